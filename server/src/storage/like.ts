import { type Expression, type SqlBool, sql } from 'kysely';

/** `text` with LIKE's wildcards and the escape character escaped (for `escape '\\'`). */
export const escapeLike = (text: string): string => text.replace(/[\\%_]/g, (c) => '\\' + c);

/**
 * `column` contains `text`, case-insensitively (ASCII on SQLite), with `%`,
 * `_` and `\` in `text` matched literally. SQLite's LIKE has no escape
 * character unless told, PostgreSQL's is `\`: the ESCAPE clause makes both
 * engines read the same pattern the same way.
 */
export function containsText(column: string, text: string): Expression<SqlBool> {
  const pattern = `%${escapeLike(text.toLowerCase())}%`;
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`;
}
