export * from './environments';
export * from './names';
export * from './paths';
export * from './tfvars';
