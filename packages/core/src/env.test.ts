import { z } from 'zod';
import { parseEnv } from './env';
import { ConfigError } from './errors';

const schema = z.object({
  TABLE_NAME: z.string().min(1),
  MAX_FILE_SIZE_MB: z.coerce.number().positive(),
  OPTIONAL: z.string().optional(),
});

describe('parseEnv', () => {
  it('returns the parsed values', () => {
    expect(parseEnv(schema, { TABLE_NAME: 't', MAX_FILE_SIZE_MB: '64' })).toEqual({
      TABLE_NAME: 't',
      MAX_FILE_SIZE_MB: 64,
    });
  });

  it('fails naming every missing or malformed variable', () => {
    const act = () => parseEnv(schema, { MAX_FILE_SIZE_MB: 'lots' });

    expect(act).toThrow(ConfigError);
    expect(act).toThrow(/TABLE_NAME: .*missing/);
    expect(act).toThrow(/MAX_FILE_SIZE_MB: .*"lots"/);
  });
});
