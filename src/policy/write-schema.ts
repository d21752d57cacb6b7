/** `npm run schema`: regenerate policies/schema.json from the zod schema (a unit test checks it is current). */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { policyJsonSchemaText } from './schema.js';

const target = fileURLToPath(new URL('../../policies/schema.json', import.meta.url));
await writeFile(target, policyJsonSchemaText());
console.log(`wrote ${target}`);
