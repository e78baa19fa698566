/**
 * `residency/postgres`: the PostgreSQL store, shared by several runtimes (processes): one
 * agent population, ownership per shard through leases, wake-up hints and remote replies
 * (see `StoreCluster`).
 *
 * Its own entry so that `residency` never loads `pg`: pg is an optional peer dependency
 * (npm install pg), loaded the first time `postgresStore()` is called.
 *
 * @example
 * import { createRuntime } from 'residency';
 * import { postgresStore } from 'residency/postgres';
 * const runtime = await createRuntime({ agents: [chat], residentCap: 32, runningCap: 8, store: postgresStore(process.env.DATABASE_URL!) });
 */
export { postgresStore } from './store/postgres/postgresStore.js';
export type { PgPool, PostgresStoreOptions } from './store/postgres/postgresStore.js';
export { shardOf } from './store/Cluster.js';
export type { ClusterEvent, ClusterMember, ClusterView, StoreCluster, StoredReply } from './store/Cluster.js';
