import { loadConfig as loadAnalyzerConfig } from '@binaryalert/analyzer/config';
import { ConfigError, DEFAULT_ARCHIVE_SETTINGS } from '@binaryalert/core';
import {
  COMMON_SETTINGS,
  FUNCTIONS,
  deploymentContext,
  functionEnvironments,
  type SettingName,
} from './functions';
import { loadTfvars, type BinaryAlertConfig } from './tfvars';

const IDS = {
  accountId: '123456789012',
  queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/q',
};

let config: BinaryAlertConfig;
beforeAll(async () => {
  config = await loadTfvars();
});

/** The settings an environment builder reads, recorded through a proxy of the configuration. */
function settingsRead(build: (config: BinaryAlertConfig) => unknown): Set<string> {
  const read = new Set<string>();
  const proxy = new Proxy(config, {
    get(target, key, receiver) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  build(proxy);
  return read;
}

describe('the function manifest', () => {
  it.each(FUNCTIONS.map((fn) => [fn.name, fn]))(
    '%s: its handler loads the environment the manifest builds',
    (_name, fn) => {
      const env = fn.environment(config, deploymentContext(config, IDS));

      expect(() => fn.loadConfig(env)).not.toThrow();
      expect(Object.keys(env).filter((name) => !(name in fn.envSchema.shape))).toEqual([]);
    },
  );

  it.each(FUNCTIONS.map((fn) => [fn.name, fn]))(
    '%s: its handler refuses the environment without any one required variable',
    (_name, fn) => {
      const env = fn.environment(config, deploymentContext(config, IDS));
      const required = Object.keys(fn.envSchema.shape).filter(
        (name) => !fn.envSchema.shape[name]!.safeParse(undefined).success,
      );

      for (const name of required) {
        const { [name]: _dropped, ...rest } = env;
        expect(() => fn.loadConfig(rest)).toThrow(ConfigError);
        expect(() => fn.loadConfig(rest)).toThrow(new RegExp(name));
      }
      expect(required.length).toBeGreaterThan(0);
    },
  );

  it.each(FUNCTIONS.map((fn) => [fn.name, fn]))(
    '%s: lists every setting its environment is built from',
    (_name, fn) => {
      const read = settingsRead((proxy) => fn.environment(proxy, deploymentContext(config, IDS)));
      const declared = new Set<SettingName>([...fn.settings, ...COMMON_SETTINGS]);

      expect([...read].filter((setting) => !declared.has(setting as SettingName))).toEqual([]);
      expect(fn.settings).toContain(fn.memoryMbSetting);
      expect(fn.settings).toContain(fn.timeoutSecSetting);
    },
  );

  it('gives the analyzer the settings its loadConfig turns into limits', () => {
    const env = functionEnvironments(config, IDS).analyzer;

    const parsed = loadAnalyzerConfig(env);

    expect(parsed.settings.maxFileBytes).toBe(config.max_file_size_mb * 1024 * 1024);
    expect(parsed.settings.scanTimeoutSeconds).toBe(config.scan_timeout_seconds);
    expect(parsed.settings.negativeAlertsTopicArn !== '').toBe(config.enable_negative_match_alerts);
    expect(parsed.settings.archives).toEqual({
      passwords: config.archive_passwords,
      maxDepth: config.archive_max_depth,
      maxMembers: config.archive_max_members,
      maxExpandedBytes: config.archive_max_expanded_mb * 1024 * 1024,
      maxRatio: config.archive_max_ratio,
    });
    // `manage.ts scan` opens containers with the runtime's defaults: the shipped tfvars' values.
    expect(parsed.settings.archives).toEqual(DEFAULT_ARCHIVE_SETTINGS);
  });
});
