/** Bearer secrets (enrollment, admin and gateway tokens) are stored only as this hash. */
import { createHash } from 'node:crypto';

export const hashSecret = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
