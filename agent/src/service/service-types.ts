/**
 * What `latchkey service install|uninstall` needs to know, shared by the
 * pure file generators and the installer.
 */
import { CodedError } from '../errors.js';

export const SERVICE_NAME = 'latchkey';
export const LAUNCHD_LABEL = 'com.latchkey.agent';
export const DISPLAY_NAME = 'Latchkey device agent';
/**
 * Windows: the WinSW service wrapper is written beside latchkey.exe under
 * this base name; WinSW reads `<its own base name>.xml` from its directory.
 */
export const WINSW_BASENAME = 'latchkey-service';
export const DESCRIPTION = "Keeps this device's Latchkey client certificate fresh and answers the server's control channel.";

/** system: root / LocalSystem at boot. user: the logged-in user's agent, for the os keystore (login keychain, libsecret). */
export type ServiceScope = 'system' | 'user';

export interface ServiceSpec {
  /**
   * The argv that starts the agent, before the subcommand: `['/usr/local/bin/latchkey']`
   * for the packaged binary, `[process.execPath, '/path/to/cli.js']` in development.
   * argv[0] must be an absolute path.
   */
  command: readonly string[];
  /** Absolute path of the agent's state directory, passed as `--state-dir`. */
  stateDir: string;
  scope: ServiceScope;
  /**
   * Directories the keystore writes outside the state directory (a SoftHSM
   * token directory, the tpm2-pkcs11 store): writable under ProtectSystem=strict.
   */
  writablePaths?: readonly string[];
}

/** The daemon's full argv: `<exe…> run --state-dir <dir>`. */
export const agentArgv = (s: ServiceSpec): string[] => [...s.command, 'run', '--state-dir', s.stateDir];

/** A program and its arguments, run without a shell. */
export interface Command {
  cmd: string;
  args: string[];
}

export type ServiceErrorCode = 'INVALID' | 'UNSUPPORTED' | 'NOT_PRIVILEGED' | 'COMMAND_FAILED';

const EXIT: Record<ServiceErrorCode, number> = { INVALID: 2, UNSUPPORTED: 2, NOT_PRIVILEGED: 1, COMMAND_FAILED: 1 };

export class ServiceError extends CodedError<ServiceErrorCode> {
  override readonly name = 'ServiceError';
  /** Exit code of the CLI contract (docs/architecture.md "Command lines": 1 failure, 2 usage). */
  get exitCode(): number {
    return EXIT[this.code];
  }
}

/**
 * Refuses control characters (NUL, newline, …) in anything that ends up in a
 * unit file, a plist or a Windows command line: none of those formats can
 * carry them safely, and no real path needs them.
 */
export function assertPrintable(what: string, value: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new ServiceError('INVALID', `${what} contains a control character: ${JSON.stringify(value)}`);
}
