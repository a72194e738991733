export * from './logger';
export * from './errors';
export * from './env';
export * from './s3-event';
export * from './analysis';
export * from './metrics';
export * from './match-table';
export * from './verdict-ledger';
