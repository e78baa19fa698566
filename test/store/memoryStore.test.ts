import { memoryStore } from '../../src/store/memoryStore.js';
import { describeStore } from './describeStore.js';

describeStore('memoryStore', () => memoryStore());
