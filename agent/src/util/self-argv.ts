import { isSea } from 'node:sea';

/** How to run this same program again: the packaged binary, or node with this script in a development checkout. */
export function selfArgv(): string[] {
  return isSea() || !process.argv[1] ? [process.execPath] : [process.execPath, process.argv[1]];
}
