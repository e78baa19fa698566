import { afterEach, describe, expect, it } from 'vitest';
import { FencedError, StoreError } from '../../src/errors.js';
import { postgresStore } from '../../src/store/postgres/postgresStore.js';
import type { Store } from '../../src/store/Store.js';
import { describeStore } from './describeStore.js';
import { pgTest } from './pgTest.js';

const pg = await pgTest('pgconf');

const schemas = new WeakMap<Store, string>();

function freshStore(schema = pg.schema()): Store {
  const store = postgresStore({ connectionString: pg.url, schema, shards: 16 });
  schemas.set(store, schema);
  return store;
}

describe.skipIf(!pg.available)('postgresStore', () => {
  describeStore('postgresStore', () => freshStore(), {
    reopen: async (store) => {
      const schema = schemas.get(store)!;
      await store.close();
      return freshStore(schema);
    },
  });
});
