/** Named boards: definitions, periods and the control-plane repository, shared by the service and the worker. */
export * from './definition.js';
export * from './periods.js';
export * from './boards-repo.js';
