/**
 * Device facts the agent reports: in its CSR (see FACTS_ATTRIBUTE_OID) and
 * in the `hello` message of the control channel. They describe the device
 * for the admin; they never decide what goes into a certificate.
 */
import { Type, type Static } from '@sinclair/typebox';
import { BoundedText, embed } from './common.js';

export { FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON } from './wire.js';


/** `process.platform` values the agent reports as is; anything else is 'other'. */
export const OsPlatform = Type.Union([Type.Literal('linux'), Type.Literal('darwin'), Type.Literal('win32'), Type.Literal('other')], { $id: 'OsPlatform' });
export type OsPlatform = Static<typeof OsPlatform>;

export const DeviceFacts = Type.Object(
  {
    /** `os.hostname()`; 253 is the DNS name limit. */
    hostname: BoundedText(253, { minLength: 1 }),
    os: Type.Object(
      {
        platform: embed(OsPlatform),
        /** `os.release()`, e.g. "6.1.0-18-amd64", "23.1.0", "10.0.22631". */
        release: BoundedText(100),
        /** `os.version()` or a product name, e.g. "macOS 14.1". */
        version: Type.Optional(BoundedText(200)),
      },
      { additionalProperties: false },
    ),
    /** `process.arch`, e.g. "x64", "arm64". */
    arch: BoundedText(32, { minLength: 1 }),
    /** Linux /etc/machine-id, macOS IOPlatformUUID, Windows MachineGuid. */
    hardwareId: BoundedText(128, { minLength: 1 }),
    agentVersion: BoundedText(64, { minLength: 1 }),
    /**
     * The user the device belongs to, when the agent knows it. Reported, not
     * trusted: shown as a fact, never put into a certificate or the device's
     * record (see docs/architecture.md "Identities"). Any Unicode, no control characters.
     */
    userEmail: Type.Optional(Type.String({ maxLength: 254, pattern: '^[^@\\s\\u0000-\\u001f\\u007f]+@[^@\\s\\u0000-\\u001f\\u007f]+\\.[^@\\s\\u0000-\\u001f\\u007f]+$' })),
  },
  { $id: 'DeviceFacts', additionalProperties: false },
);
export type DeviceFacts = Static<typeof DeviceFacts>;
