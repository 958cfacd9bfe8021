// `microgate keys generate|pubkey|genpsk`: WireGuard keys in the format of
// `wg genkey`, `wg pubkey` and `wg genpsk` (base64 of 32 bytes, one line),
// so either tool's keys work with the other.
//
//   microgate keys generate > private.key        (umask 077 first, as with wg)
//   microgate keys pubkey < private.key > public.key
import { readFileSync } from 'node:fs';
import { decodeKey, encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../components/keystore/keys.ts';

export const KEYS_HELP = `Usage: microgate keys generate|pubkey|genpsk

  generate   print a new private key (32 random bytes, clamped), like \`wg genkey\`
  pubkey     read a private key on standard input, print its public key, like \`wg pubkey\`
  genpsk     print a new preshared key, like \`wg genpsk\`

Keys are base64 of 32 bytes on one line. Write private keys to files only
they can read: (umask 077; microgate keys generate > gateway.key).`;

export async function keysCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    process.stdout.write(`${KEYS_HELP}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (rest.length > 0) {
    process.stderr.write(`microgate keys ${sub}: unexpected argument ${JSON.stringify(rest[0])}\n\n${KEYS_HELP}\n`);
    return 2;
  }
  switch (sub) {
    case 'generate':
    case 'genkey': {
      const k = generatePrivateKey();
      process.stdout.write(`${encodeKey(k)}\n`);
      k.fill(0);
      return 0;
    }
    case 'genpsk': {
      const k = generatePresharedKey();
      process.stdout.write(`${encodeKey(k)}\n`);
      k.fill(0);
      return 0;
    }
    case 'pubkey': {
      let text: string;
      try {
        text = readFileSync(0, 'utf8');
      } catch (e) {
        process.stderr.write(`microgate keys pubkey: cannot read standard input: ${(e as Error).message}\n`);
        return 1;
      }
      const k = decodeKey(text);
      if (k === undefined) {
        process.stderr.write('microgate keys pubkey: standard input is not a base64 key of 32 bytes (as `wg genkey` or `microgate keys generate` print)\n');
        return 1;
      }
      process.stdout.write(`${encodeKey(publicKeyOf(k))}\n`);
      k.fill(0);
      return 0;
    }
    default:
      process.stderr.write(`microgate keys: unknown command "${sub}" (use generate, pubkey or genpsk)\n\n${KEYS_HELP}\n`);
      return 2;
  }
}
