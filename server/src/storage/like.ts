import { type Expression, type SqlBool, sql } from 'kysely';

/**
 * `column` contains `text`, case-insensitively (ASCII on SQLite), with `%`,
 * `_` and `\` in `text` matched literally. SQLite's LIKE has no escape
 * character unless told, PostgreSQL's is `\`: the ESCAPE clause makes both
 * engines read the same pattern the same way.
 */
export function containsText(column: string, text: string): Expression<SqlBool> {
  const pattern = `%${text.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`;
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`;
}
