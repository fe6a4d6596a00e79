/**
 * The tpm2-tools runner: a failure is an AgentError naming the TPM step and
 * what to do, with the step's secrets scrubbed from the tool's words;
 * TPM2TOOLS_TCTI follows the agent's setting; tpm2_ptool gets its arguments
 * on stdin, never on its command line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../errors.js';
import { type ToolResult, createTpmTools, scrub } from './tpm-tools.js';

test('tpm2-tools runner: errors, scrubbing, TCTI, ptool arguments on stdin', async () => {
  const seen: { cmd: string; args: string[]; env: NodeJS.ProcessEnv; input?: Buffer }[] = [];
  let answer: ToolResult = { code: 0, stdout: Buffer.from('ok'), stderr: '' };
  const tools = createTpmTools({
    cwd: '/tmp',
    env: { PATH: '/nonexistent' },
    tcti: 'tabrmd:bus_type=session',
    exec: async (cmd, args, o) => {
      seen.push({ cmd, args, env: o.env, ...(o.input ? { input: o.input } : {}) });
      return answer;
    },
  });
  assert.equal((await tools.run('tpm2_getcap', ['properties-fixed'], { step: 'x', hint: 'y' })).toString(), 'ok');
  assert.equal(seen[0]!.env.TPM2TOOLS_TCTI, 'tabrmd:bus_type=session');

  answer = { code: 1, stdout: Buffer.alloc(0), stderr: 'WARNING:esys:src/tss2-esys/api/Esys_Create.c:375:Esys_Create_Finish() Received TPM Error\nERROR: auth 0123456789abcdef rejected\n' };
  await assert.rejects(tools.run('tpm2_create', [], { step: 'TPM2_Create (the device key)', hint: 'check the parent', secrets: ['0123456789abcdef'] }), (e: unknown) => {
    assert.ok(e instanceof AgentError && e.code === 'TPM');
    assert.match(e.message, /^the TPM refused TPM2_Create \(the device key\) \(tpm2_create: .*ERROR: auth \[redacted\] rejected\); check the parent$/);
    assert.ok(!e.message.includes('0123456789abcdef'));
    return true;
  });

  answer = { code: 0, stdout: Buffer.from('action: link'), stderr: '' };
  await tools.ptool(['link', '--userpin', '1234', '--auth', 'secret-auth'], { step: 'link', hint: '' });
  const py = seen.at(-1)!;
  assert.deepEqual(JSON.parse(py.input!.toString()), ['link', '--userpin', '1234', '--auth', 'secret-auth']);
  assert.ok(!py.args.join(' ').includes('1234') && !py.args.join(' ').includes('secret-auth'));
  assert.match(py.args.join(' '), /tpm2_unseal', '-c', ctx, '-p', 'file:-'/, "ptool's unseal takes its auth on stdin");

  assert.equal(scrub('pin 1234 and 1234', ['1234']), 'pin [redacted] and [redacted]');
});
