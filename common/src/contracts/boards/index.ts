/** Named boards: definitions and periods, shared by the service and the worker (their control-plane repository is platform/boards-repo.ts). */
export * from './definition.js';
export * from './periods.js';
