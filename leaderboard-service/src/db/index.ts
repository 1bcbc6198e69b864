/** The service's Postgres repositories that tools outside it may use (`@lb/leaderboard-service/db`). */
export { AccountsRepo } from './accounts-repo.js';
export { ApiKeysRepo } from './api-keys-repo.js';
export { ArchiveRepo } from './archive-repo.js';
export { AUDIT_ACTIONS, AuditRepo, CLI_ACTOR, appendIn, isAuditAction, quotaTarget, type AuditAction, type AuditActor, type AuditEntry, type AuditQuery, type AuditRecord } from './audit-repo.js';
export { HistoryRepo } from './history-repo.js';
export { ProjectsRepo, TenantsRepo } from './tenants-repo.js';
