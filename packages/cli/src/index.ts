export { createCli, helpHintOf, splitUsage, usageLine, type CliIo, type CommandSpec, type ProgramSpec } from './cli-program.js';
export { InvalidArgumentError, Option } from 'commander';
export { MAX_SECRET_FILE_BYTES, type SecretSource, cleanSecret, readSecretFile } from './secret-input.js';
