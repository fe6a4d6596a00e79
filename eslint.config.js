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
  { ignores: ['**/dist/**', '**/dist-bin/**', '**/node_modules/**', '.tmp/**', '.lts/**'] },
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
    // The console (browser code): server data is never parsed as HTML, and the
    // protocol package is used for its types only (its values bring TypeBox into the bundle).
    files: ['server/console/src/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "MemberExpression[property.name=/^(innerHTML|outerHTML)$/]", message: 'the console never renders through innerHTML/outerHTML: build nodes with h() and textContent.' },
        { selector: "CallExpression[callee.property.name=/^(insertAdjacentHTML|write|writeln|createContextualFragment)$/]", message: 'the console never parses strings as HTML: build nodes with h().' },
      ],
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [{ name: '@latchkey/protocol', allowTypeImports: true, message: 'the console imports @latchkey/protocol with `import type` only (its values bring TypeBox into the bundle).' }],
          patterns: [{ group: ['@latchkey/agent', '@latchkey/agent/*', '**/agent/src/**'], message: 'agent and server never import each other; share through packages/protocol.' }],
        },
      ],
    },
  },
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
