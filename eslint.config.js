// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const boundary = (other) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: [
        { group: [`@latchkey/${other}`, `@latchkey/${other}/*`], message: `agent and server never import each other; share through packages/protocol.` },
        { group: [`**/${other}/src/**`, `**/${other}/dist/**`, `../${other}`, `../../${other}`], message: `agent and server never import each other; share through packages/protocol.` },
      ],
    },
  ],
});

export default tseslint.config(
  { ignores: ['**/dist/**', '**/dist-bin/**', '**/node_modules/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', performance: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-console': 'off',
      eqeqeq: ['error', 'always'],
    },
  },
  { files: ['agent/**'], rules: boundary('server') },
  { files: ['server/**'], rules: boundary('agent') },
  {
    files: ['packages/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@latchkey/server', '@latchkey/agent', '**/server/**', '**/agent/**'], message: 'packages/* never depend on the agent or the server.' }] },
      ],
    },
  },
);
