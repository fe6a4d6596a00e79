/**
 * The table-to-commander contract both CLIs rely on: exit codes, help with
 * examples, hidden commands routed, one-line usage errors with a suggestion.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Option } from 'commander';
import { createCli, helpHintOf, splitUsage, usageLine, type ProgramSpec } from './cli-program.js';

function program(): { run: (argv: string[]) => Promise<number>; out: string[]; err: string[]; calls: unknown[] } {
  const out: string[] = [];
  const err: string[] = [];
  const calls: unknown[] = [];
  const spec: ProgramSpec<{ o: Record<string, unknown> }> = {
    name: 'tool',
    summary: 'a tool',
    globals: [new Option('--debug', 'stacks')],
    groups: { things: 'the things' },
    commands: [
      { usage: 'things remove <id>', summary: 'remove one', options: [new Option('--reason <r>', 'why').choices(['old', 'broken']), new Option('--data-dir <d>', 'where')], examples: ['things remove 7 --reason old'], run: async (ctx, args) => (calls.push({ args, o: ctx.o }), 0) },
      { usage: 'things list', summary: 'list them', options: [new Option('--fail', 'throw')], examples: ['things list'], run: async (ctx) => { if (ctx.o.fail) throw new Error('bad'); return 4; } },
      { usage: '_worker', summary: 'internal', hidden: true, examples: [], run: async () => (calls.push('worker'), 0) },
    ],
    epilog: 'Exit codes: 0 ok.',
    version: '1.2.3',
  };
  return { run: createCli(spec, (o) => ({ o }), { out: (s) => out.push(s), err: (s) => err.push(s) }), out, err, calls };
}

describe('createCli', () => {
  test('a command runs with its arguments, its options and the global ones; its exit code is returned', async () => {
    const p = program();
    assert.equal(await p.run(['things', 'remove', '7', '--reason', 'old', '--debug']), 0);
    assert.deepEqual(p.calls, [{ args: ['7'], o: { reason: 'old', debug: true } }]);
    assert.equal(await p.run(['things', 'list']), 4);
  });

  test('--help on a command and a group: exit 0, options and examples; --version', async () => {
    const p = program();
    assert.equal(await p.run(['things', 'remove', '--help']), 0);
    assert.match(p.out.join(''), /--reason <r>\s+why \(choices: "old", "broken"\)[\s\S]*Global Options:[\s\S]*--debug[\s\S]*Examples:\n {2}tool things remove 7 --reason old/);
    p.out.length = 0;
    assert.equal(await p.run(['things', '--help']), 0);
    assert.match(p.out.join(''), /Examples:\n {2}tool things remove 7 --reason old\n {2}tool things list/);
    p.out.length = 0;
    assert.equal(await p.run(['--version']), 0);
    assert.equal(p.out.join(''), '1.2.3\n');
  });

  test('usage errors: exit 2, one line naming the fix, then where to look', async () => {
    const p = program();
    assert.equal(await p.run(['things', 'remove', '7', '--datadir', 'x']), 2);
    assert.equal(p.err.join(''), "tool: unknown option '--datadir' (did you mean --data-dir?)\n(see tool things remove --help)\n");
    p.err.length = 0;
    assert.equal(await p.run(['things', 'remove', '7', '--reason', 'stolen']), 2);
    assert.match(p.err.join(''), /^tool: option '--reason <r>' argument 'stolen' is invalid\. Allowed choices are old, broken\.\n/);
    for (const argv of [['thngs'], ['things'], ['things', 'remove'], ['things', 'list', 'extra'], []]) assert.equal(await p.run(argv), 2, argv.join(' '));
    assert.deepEqual(p.calls, []);
  });

  test('a hidden command is routed but not listed', async () => {
    const p = program();
    assert.equal(await p.run(['_worker']), 0);
    assert.deepEqual(p.calls, ['worker']);
    await p.run(['--help']);
    assert.doesNotMatch(p.out.join(''), /_worker/);
  });

  test("an error thrown by a command's run names where its help is", async () => {
    const p = program();
    const e = await p.run(['things', 'list', '--fail']).catch((x: unknown) => x);
    assert.ok(e instanceof Error && e.message === 'bad');
    assert.equal(helpHintOf(e), 'tool things list --help');
    assert.equal(helpHintOf(new Error('elsewhere')), undefined);
  });

  test('splitUsage and usageLine', () => {
    assert.deepEqual(splitUsage('gateway token revoke <id>'), { path: ['gateway', 'token', 'revoke'], args: ['<id>'] });
    assert.deepEqual(splitUsage('init'), { path: ['init'], args: [] });
    assert.equal(usageLine('x', "error: unknown command 'enrol'\n(Did you mean enroll?)\n"), "x: unknown command 'enrol' (did you mean enroll?)\n");
  });
});
