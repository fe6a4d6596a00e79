/**
 * Device facts the agent reports: in the CSR (a custom attribute holding the
 * facts as a UTF8String of JSON) and again over mTLS after enrollment.
 */
import { Type, type Static } from '@sinclair/typebox';

/**
 * CSR attribute carrying the facts as a UTF8String of JSON.
 * Placeholder private-enterprise arc (1.3.6.1.4.1.59402): to be registered with IANA.
 */
export const FACTS_ATTRIBUTE_OID = '1.3.6.1.4.1.59402.1.1';
/** Largest facts JSON accepted, in characters. */
export const MAX_FACTS_JSON = 4096;

export const DeviceFacts = Type.Object(
  {
    hostname: Type.String({ minLength: 1, maxLength: 253 }),
    os: Type.Object(
      {
        platform: Type.Union([Type.Literal('linux'), Type.Literal('darwin'), Type.Literal('win32'), Type.Literal('other')]),
        release: Type.String({ maxLength: 100 }),
        version: Type.Optional(Type.String({ maxLength: 200 })),
      },
      { additionalProperties: false },
    ),
    arch: Type.String({ maxLength: 32 }),
    /** Linux /etc/machine-id, macOS IOPlatformUUID, Windows MachineGuid. */
    hardwareId: Type.String({ minLength: 1, maxLength: 128 }),
    agentVersion: Type.String({ maxLength: 64 }),
    userEmail: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
  },
  { $id: 'DeviceFacts', additionalProperties: false },
);
export type DeviceFacts = Static<typeof DeviceFacts>;
