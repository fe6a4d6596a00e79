/**
 * One readable sentence for a request that fails its schema. ajv reports a
 * union of literals (a revocation reason, a status) as one "must be equal to
 * constant" per literal plus "must match a schema in anyOf"; this says
 * instead which values the field takes.
 */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

export function validationMessage(context: string | undefined, errors: readonly SchemaError[]): string {
  const where = (path: string): string => `${context ?? ''}${path}` || 'the request';
  const allowed = new Map<string, unknown[]>();
  for (const e of errors) {
    const values = e.keyword === 'const' ? [e.params.allowedValue] : e.keyword === 'enum' ? (e.params.allowedValues as unknown[]) : [];
    if (values.length) allowed.set(e.instancePath, [...(allowed.get(e.instancePath) ?? []), ...values]);
  }
  const parts = new Set<string>();
  for (const e of errors) {
    if (allowed.has(e.instancePath) && ['const', 'enum', 'anyOf'].includes(e.keyword)) {
      parts.add(`${where(e.instancePath)} must be one of: ${[...new Set(allowed.get(e.instancePath))].map(String).join(', ')}`);
    } else parts.add(`${where(e.instancePath)} ${e.message ?? `fails ${e.keyword}`}`);
  }
  return [...parts].join('; ');
}
