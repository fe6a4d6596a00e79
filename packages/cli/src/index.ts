export { createCli, helpHintOf, splitUsage, usageLine, type CliIo, type CommandSpec, type ProgramSpec } from './cli-program.js';
export { InvalidArgumentError, Option } from 'commander';
