/** The CLI's two failures with their own exit codes (cli.ts): an API error (1, its code printed) and a usage or configuration error (2). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}
