/**
 * Building blocks shared by the schemas of this package; index.ts exports
 * only TIMESTAMP_PATTERN, UUID_PATTERN and SERIAL_PATTERN. Every string has
 * a maximum length, and strings use `pattern`, never `format`: TypeBox's
 * `Value.Check` rejects an unregistered format, so a schema with `format`
 * only works after a process-wide registration.
 */
import { Type, type StringOptions, type TSchema } from '@sinclair/typebox';

/** RFC 3339 date-time in UTC or with an offset, as `Date.prototype.toISOString()` writes it. */
export const TIMESTAMP_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$';
/** UUID in lower case (the server assigns v4 device ids). */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/**
 * Certificate serial number in lower-case hex: RFC 5280 §4.1.2.2 allows 20
 * octets, plus a leading 00 octet when the high bit is set.
 */
export const SERIAL_PATTERN = '^[0-9a-f]{1,42}$';
/** No C0 control characters and no DEL: these strings end up in terminals and logs. */
export const PRINTABLE_PATTERN = '^[^\\u0000-\\u001f\\u007f]*$';

export const Timestamp = () => Type.String({ pattern: TIMESTAMP_PATTERN, maxLength: 40 });
export const Uuid = () => Type.String({ pattern: UUID_PATTERN, maxLength: 36 });
export const SerialHex = () => Type.String({ pattern: SERIAL_PATTERN, maxLength: 42 });
/** Event stream position: opaque to clients, monotonic on the server. */
export const Cursor = () => Type.String({ minLength: 1, maxLength: 64, pattern: PRINTABLE_PATTERN });
/** Free text that is shown to people: bounded, no control characters. */
export const BoundedText = (maxLength: number, options: StringOptions = {}) => Type.String({ ...options, maxLength, pattern: PRINTABLE_PATTERN });

/**
 * An exported schema, minus its `$id`, for use inside another schema. Ajv
 * (fastify's validator) refuses an `$id` that appears twice in one schema or
 * that another compiled schema already holds, so a `$id` sits only at the top.
 */
export function embed<T extends TSchema>(schema: T): T {
  const { $id: _id, ...rest } = schema;
  return rest as T;
}
