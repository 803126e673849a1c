export * from './schema.ts';
export * from './validate.ts';
export * from './normalize.ts';
export * from './edit.ts';
export * from './json.ts';
