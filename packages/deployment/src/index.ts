export * from './functions';
export * from './names';
export * from './paths';
export * from './queueing';
export * from './tfvars';
