import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  hashToken,
  KEY_BYTES,
  newApiToken,
  newKeySpec,
  newWebhookSecret,
  open,
  parseKeyring,
  safeEqual,
  seal,
} from '../../lib/crypto';
import { secretSchema } from '../../lib/schemas';

const key = (bytes = KEY_BYTES) => randomBytes(bytes).toString('base64');

describe('lib/crypto', () => {
  describe('parseKeyring (ALERTS_ENCRYPTION_KEYS)', () => {
    it('reads id:base64key pairs; the first key seals, every key is kept', () => {
      const a = key();
      const b = key();
      const keyring = parseKeyring(` new:${a} , old:${b} ,`);
      assert.equal(keyring.primaryId, 'new');
      assert.deepEqual([...keyring.keys.keys()], ['new', 'old']);
      assert.deepEqual(keyring.keys.get('new'), Buffer.from(a, 'base64'));
      assert.deepEqual(keyring.keys.get('old'), Buffer.from(b, 'base64'));
    });

    it('accepts what newKeySpec makes, named by date by default', () => {
      const spec = newKeySpec();
      assert.match(spec, /^k\d{8}:[A-Za-z0-9+/]{43}=$/);
      const keyring = parseKeyring(spec);
      assert.equal(keyring.primaryId, spec.split(':')[0]);
      assert.equal(keyring.keys.get(keyring.primaryId)!.length, KEY_BYTES);
      assert.equal(parseKeyring(newKeySpec('k-2026_11')).primaryId, 'k-2026_11');
      assert.notEqual(newKeySpec('a'), newKeySpec('a'), 'every key is new random bytes');
    });

    it('refuses an empty keyring', () => {
      assert.throws(() => parseKeyring(''), /the encryption keyring is empty/);
      assert.throws(() => parseKeyring(' , ,'), /the encryption keyring is empty/);
    });

    it('refuses a key without an id, without showing the key in the error', () => {
      const bare = key();
      assert.throws(
        () => parseKeyring(bare),
        (err: Error) => /must look like id:base64key/.test(err.message) && !err.message.includes(bare),
      );
      assert.throws(() => parseKeyring(`:${key()}`), /must look like id:base64key/);
    });

    it('refuses a key id with other characters than letters, digits, _ and -', () => {
      assert.throws(() => parseKeyring(`bad id:${key()}`), /encryption key id "bad id" must be 1-64 letters, digits, _ or -/);
      assert.throws(() => parseKeyring(`${'k'.repeat(65)}:${key()}`), /must be 1-64 letters/);
    });

    it('refuses a key that is not 32 bytes', () => {
      assert.throws(() => parseKeyring(`short:${key(16)}`), /encryption key "short" must be 32 bytes of base64, got 16 bytes/);
      assert.throws(() => parseKeyring(`long:${key(48)}`), /got 48 bytes/);
      assert.throws(() => parseKeyring('empty:'), /got 0 bytes/);
    });

    it('refuses the same id twice', () => {
      assert.throws(() => parseKeyring(`k1:${key()},k1:${key()}`), /encryption key id "k1" appears twice/);
    });
  });

  describe('seal and open (AES-256-GCM)', () => {
    const keyring = parseKeyring(newKeySpec('k1'));

    it('round-trips text, sealed with the primary key', () => {
      const text = JSON.stringify({ url: 'https://hooks.example.com/a?b=c', headers: { 'X-Émoji': '🔔' }, secrets: ['whsec_x'] });
      const sealed = seal(keyring, text, 'cfg_1');
      assert.equal(sealed.keyId, 'k1');
      assert.ok(!sealed.ciphertext.includes('hooks.example.com'));
      assert.equal(open(keyring, sealed, 'cfg_1'), text);
      assert.equal(open(keyring, seal(keyring, '', 'cfg_1'), 'cfg_1'), '');
    });

    it('seals the same text differently every time (random IV)', () => {
      const a = seal(keyring, 'same', 'cfg_1');
      const b = seal(keyring, 'same', 'cfg_1');
      assert.notEqual(a.ciphertext, b.ciphertext);
      assert.equal(open(keyring, a, 'cfg_1'), open(keyring, b, 'cfg_1'));
    });

    it('binds the ciphertext to its owner: opening it for another config id fails', () => {
      const sealed = seal(keyring, 'secret stuff', 'cfg_owner');
      assert.throws(() => open(keyring, sealed, 'cfg_other'), /unable to authenticate data/);
      assert.throws(() => open(keyring, sealed, ''), /unable to authenticate data/);
    });

    it('detects a changed ciphertext', () => {
      const sealed = seal(keyring, 'secret stuff', 'cfg_1');
      const raw = Buffer.from(sealed.ciphertext, 'base64');
      raw[14] ^= 1; // a bit of the encrypted text
      assert.throws(() => open(keyring, { ...sealed, ciphertext: raw.toString('base64') }, 'cfg_1'), /unable to authenticate data/);
    });

    it('opens old data after a rotation, and seals new data with the new key', () => {
      const oldSpec = newKeySpec('old');
      const before = parseKeyring(oldSpec);
      const sealed = seal(before, 'kept', 'cfg_1');
      const after = parseKeyring(`${newKeySpec('new')},${oldSpec}`);
      assert.equal(open(after, sealed, 'cfg_1'), 'kept');
      assert.equal(seal(after, 'kept', 'cfg_1').keyId, 'new');
    });

    it('names the missing key when the keyring lacks it', () => {
      const sealed = seal(parseKeyring(newKeySpec('gone')), 'x', 'cfg_1');
      assert.throws(() => open(keyring, sealed, 'cfg_1'), /encryption key "gone" is not in the keyring \(ALERTS_ENCRYPTION_KEYS\)/);
    });
  });

  describe('tokens and secrets', () => {
    it('hashes tokens with SHA-256 (hex), the same way every time', () => {
      assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      assert.equal(hashToken('abc'), hashToken('abc'));
      assert.notEqual(hashToken('abc'), hashToken('abd'));
    });

    it('makes long random API tokens', () => {
      const token = newApiToken();
      assert.match(token, /^mha_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(newApiToken(), token);
    });

    it('makes Standard Webhooks secrets: whsec_ + base64 of 32 random bytes, accepted by the config schema', () => {
      const secret = newWebhookSecret();
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      assert.equal(Buffer.from(secret.slice('whsec_'.length), 'base64').length, 32);
      assert.equal(secretSchema.parse(secret), secret);
      assert.notEqual(newWebhookSecret(), secret);
    });

    it('compares strings in constant time, any length', () => {
      assert.equal(safeEqual('token', 'token'), true);
      assert.equal(safeEqual('token', 'tokem'), false);
      assert.equal(safeEqual('token', 'token2'), false);
      assert.equal(safeEqual('', ''), true);
    });
  });
});
