// Transitional: both entry points, until every import names one of them.
export * from './contracts/index.js';
export * from './platform/index.js';
