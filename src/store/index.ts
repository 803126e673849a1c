import { openDatabase } from './db.ts';
import { Store } from './store.ts';

export * from './schema.ts';
export {
  Store,
  StoreError,
  type NewGeneration,
  type GenerationUpdate,
  type UsageCount,
  type PendingInteraction,
} from './store.ts';
export { openDatabase, migrate, DB_FILE, type Db, type Migration } from './db.ts';
export { newId } from './ids.ts';

/** Opens the SQLite file in `dataDir` and the store on it (migrated). Close with `store.db.close()`. */
export function openStore(dataDir: string): Store {
  return new Store(openDatabase(dataDir), dataDir);
}
