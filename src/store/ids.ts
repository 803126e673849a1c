import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * A short random id: a time prefix keeps ids roughly sortable, 60 random bits keep them unguessable
 * enough that a custom_id cannot be forged to press someone else's button by guessing.
 */
export function newId(prefix: string): string {
  let t = Date.now();
  let time = '';
  for (let i = 0; i < 8; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(12);
  let rand = '';
  for (let i = 0; i < 12; i++) rand += ALPHABET[bytes[i]! % 32];
  return `${prefix}${time}${rand}`;
}

export const ID_PATTERN = /^[a-z]{1,3}[0-9a-z]{20}$/;
