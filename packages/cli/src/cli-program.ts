/**
 * The command-line contract of latchkey-server and latchkey, shared by every command:
 * a declarative table of commands turned into one commander program, with
 * `--help` (options and examples) on every command and group, typo
 * suggestions, and exit codes 0 ok, 1 failure, 2 usage or configuration.
 */
import { Command, CommanderError, type Option } from 'commander';

export interface CommandSpec<Ctx> {
  /** Words of the command, then its arguments in commander syntax: `devices revoke <id>`. */
  usage: string;
  summary: string;
  options?: Option[];
  /** Shown under "Examples:" in the command's --help (and the first one in its group's). */
  examples: string[];
  /** Internal command: routed like any other, left out of --help. */
  hidden?: boolean;
  run(ctx: Ctx, args: string[], opts: Record<string, unknown>): Promise<number>;
}

export interface ProgramSpec<Ctx> {
  name: string;
  summary: string;
  /** Options of every command (e.g. --debug), recognised before or after the command words. */
  globals: Option[];
  /** Summaries of the command groups (`devices`, `gateway token`). */
  groups: Record<string, string>;
  commands: CommandSpec<Ctx>[];
  /** Text after the top-level help (environment, exit codes). */
  epilog: string;
  /** Printed by --version. */
  version?: string;
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const HELP_HINT = Symbol('latchkey.cli.helpHint');

/** `latchkey-server init --help` for an error thrown by that command's run, else undefined. */
export function helpHintOf(e: unknown): string | undefined {
  return e instanceof Error ? ((e as unknown as Record<symbol, string | undefined>)[HELP_HINT]) : undefined;
}

/** Splits `devices revoke <id>` into the command path and its argument words. */
export function splitUsage(usage: string): { path: string[]; args: string[] } {
  const words = usage.split(/\s+/).filter(Boolean);
  const i = words.findIndex((w) => w.startsWith('<') || w.startsWith('['));
  return i < 0 ? { path: words, args: [] } : { path: words.slice(0, i), args: words.slice(i) };
}

/** commander's "error: unknown option '--datadir'\n(Did you mean --data-dir?)" as one line. */
export function usageLine(name: string, text: string): string {
  const s = text
    .replace(/^error: /, '')
    .replace(/\n\(Did you mean ([^)]*)\)/, ' (did you mean $1)')
    .trimEnd();
  return `${name}: ${s}\n`;
}

/**
 * The program for a table of commands: `(argv) => exit code`. `ctxOf`
 * builds a command's context from its options and the global ones.
 */
export function createCli<Ctx>(spec: ProgramSpec<Ctx>, ctxOf: (opts: Record<string, unknown>) => Ctx, io: CliIo): (argv: string[]) => Promise<number> {
  let code = 0;
  const root = new Command(spec.name).description(spec.summary).addHelpText('after', `\n${spec.epilog}`);
  if (spec.version) root.version(spec.version, '--version', 'print the version');
  for (const o of spec.globals) root.addOption(o);
  const nodes = new Map<string, Command>([['', root]]);
  const examples = new Map<Command, string[]>();
  const nodeFor = (path: string[]): Command => {
    const key = path.join(' ');
    let node = nodes.get(key);
    if (!node) {
      node = nodeFor(path.slice(0, -1)).command(path[path.length - 1]!).description(spec.groups[key] ?? '');
      nodes.set(key, node);
    }
    return node;
  };
  for (const c of spec.commands) {
    const { path, args } = splitUsage(c.usage);
    const parent = nodeFor(path.slice(0, -1));
    const cmd = new Command(path[path.length - 1]!).description(c.summary);
    for (const a of args) cmd.argument(a);
    for (const o of c.options ?? []) cmd.addOption(o);
    if (c.examples.length) cmd.addHelpText('after', `\nExamples:\n${c.examples.map((e) => `  ${spec.name} ${e}`).join('\n')}`);
    cmd.action(async function (this: Command) {
      const positional = (this.processedArgs as unknown[]).flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a.map(String) : [String(a)]));
      const ctx = ctxOf(this.optsWithGlobals());
      try {
        code = await c.run(ctx, positional, this.opts());
      } catch (e) {
        // Where a usage error of this command is explained: the entry point may point there.
        if (e instanceof Error) Object.defineProperty(e, HELP_HINT, { value: `${spec.name} ${path.join(' ')} --help` });
        throw e;
      }
    });
    parent.addCommand(cmd, c.hidden ? { hidden: true } : {});
    nodes.set(path.join(' '), cmd);
    if (!c.hidden && c.examples.length && parent !== root) examples.set(parent, [...(examples.get(parent) ?? []), c.examples[0]!]);
  }
  for (const [group, list] of examples) group.addHelpText('after', `\nExamples:\n${list.map((e) => `  ${spec.name} ${e}`).join('\n')}`);
  for (const node of nodes.values()) {
    const where = [spec.name, ...ancestry(node)].join(' ');
    node
      .exitOverride()
      .configureHelp({ showGlobalOptions: true })
      .showSuggestionAfterError(true)
      .showHelpAfterError(`(see ${where} --help)`)
      .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (s, write) => write(usageLine(spec.name, s)) });
  }
  return async (argv) => {
    code = 0;
    try {
      await root.parseAsync(argv, { from: 'user' });
      return code;
    } catch (e) {
      if (!(e instanceof CommanderError)) throw e;
      // --help and --version exit 0; usage errors (and a group without its subcommand) exit 2.
      return e.exitCode === 0 ? 0 : 2;
    }
  };
}

function ancestry(c: Command): string[] {
  const names: string[] = [];
  for (let x: Command | null = c; x?.parent; x = x.parent) names.unshift(x.name());
  return names;
}
