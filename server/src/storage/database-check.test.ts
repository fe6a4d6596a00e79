import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkPostgres, createDbCommand, redactDatabaseUrl } from './database-check.js';

describe('database check before init', () => {
  test('the createdb line names host, port, user and database of the URL', () => {
    assert.equal(createDbCommand('postgres://latchkey:s3cret@db.corp.example:5433/latchkey'), 'createdb -h db.corp.example -p 5433 -U latchkey latchkey');
    assert.equal(createDbCommand('postgres://postgres@127.0.0.1/lk_prod'), 'createdb -h 127.0.0.1 -U postgres lk_prod');
    assert.equal(createDbCommand("postgres://u@h/it's"), "createdb -h h -U u 'it'\\''s'");
  });

  test('messages never carry the password of the URL', () => {
    assert.equal(redactDatabaseUrl('postgres://latchkey:s3cret@db:5432/lk'), 'postgres://latchkey:***@db:5432/lk');
    assert.equal(redactDatabaseUrl('postgres://latchkey@db:5432/lk'), 'postgres://latchkey@db:5432/lk');
  });

  test('nothing listening: a message that says where and what to check, without the password', async () => {
    const m = await checkPostgres('postgres://u:s3cret@127.0.0.1:1/lk', 3000);
    assert.ok(m);
    assert.match(m, /^cannot use the PostgreSQL database at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/lk: .*ECONNREFUSED.*check that PostgreSQL runs there/);
    assert.doesNotMatch(m, /s3cret/);
  });
});
