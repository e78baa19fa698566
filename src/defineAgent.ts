/**
 * `defineAgent`: what an agent of one type does, and how its stored state from older
 * versions of its logic is brought up to date.
 */
import type { AnyStateMachine } from 'xstate';

export interface AgentDefinition {
  readonly type: string;
  /** The agent's logic: an XState machine, or a turn function wrapped by `fromTurn`. */
  readonly logic: AnyStateMachine;
  /**
   * Re-run a message whose turn was in flight when the process died. Off by default:
   * such a turn is recorded `crashed` and its message counts as handled.
   */
  readonly redeliverCrashed: boolean;
  /** The version of the logic (default 1), written with every snapshot. */
  readonly version: number;
  /** Steps that bring a stored snapshot up to `version`, keyed by the version each produces. */
  readonly migrate: Readonly<Record<number, Migration>>;
  /** How much of each agent's history to keep; the runtime's `history` option when absent. */
  readonly history: Retention | undefined;
}

/**
 * One migration step: from the snapshot of the version before to this version's. For
 * fromTurn logic it gets and returns the agent's state; for a machine, its persisted
 * snapshot (`{ value, context, … }`).
 */
export type Migration = (previous: any) => unknown;

export interface DefineAgentOptions {
  type: string;
  logic: AnyStateMachine;
  redeliverCrashed?: boolean;
  /** The version of the logic (an integer ≥ 1, default 1). Raise it when stored state must change shape. */
  version?: number;
  /**
   * Keyed by the version each step produces (2, 3, … up to `version`), applied in order on
   * load to a snapshot written by an older version; the migrated snapshot is written at
   * the agent's next commit.
   */
  migrate?: Record<number, Migration>;
  /**
   * How much of each agent's history (its rollout) to keep: `{ keepTurns }` keeps the last
   * turns and prunes older entries a small batch per commit; `'all'` keeps everything.
   * Default: the runtime's `history` option.
   */
  history?: Retention;
}

/** A history retention policy: the last `keepTurns` turns of each agent's rollout, or `'all'`. */
export type Retention = { keepTurns: number } | 'all';

/** Checks a retention policy (`history` of defineAgent or createRuntime). */
export function assertRetention(value: unknown, where: string): asserts value is Retention {
  if (value === 'all') return;
  const k = (value as { keepTurns?: unknown } | null)?.keepTurns;
  if (typeof value === 'object' && value !== null && typeof k === 'number' && Number.isSafeInteger(k) && k >= 0) return;
  throw new TypeError(`Expected \`history\`${where} to be 'all' or { keepTurns: n } with n an integer ≥ 0, got ${JSON.stringify(value) ?? String(value)}`);
}

/**
 * Defines an agent type.
 *
 * @example
 * const chat = defineAgent({
 *   type: 'chat',
 *   logic: fromTurn(async ({ state, message }) => ({ history: [...state.history, message] }), {
 *     initialState: { history: [] },
 *   }),
 * });
 */
export function defineAgent(options: DefineAgentOptions): AgentDefinition {
  if (!options || typeof options !== 'object') {
    throw new TypeError(`Expected defineAgent options { type, logic }, got \`${String(options)}\` (${typeof options})`);
  }
  const { type, logic, redeliverCrashed = false } = options;
  if (typeof type !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(type)) {
    throw new TypeError(
      `Expected \`type\` to be 1–128 characters of letters, digits and \`._:@-\`, starting with a letter or digit, got \`${String(type)}\` (${typeof type})`,
    );
  }
  const isMachine =
    typeof logic === 'object' && logic !== null && typeof (logic as { transition?: unknown }).transition === 'function' && 'root' in logic;
  if (!isMachine) {
    throw new TypeError(
      `Expected \`logic\` of agent type "${type}" to be an XState machine or fromTurn(...) logic, got \`${String(logic)}\` (${typeof logic})`,
    );
  }
  if (typeof redeliverCrashed !== 'boolean') {
    throw new TypeError(`Expected \`redeliverCrashed\` to be a boolean, got \`${String(redeliverCrashed)}\``);
  }
  const { version = 1, migrate = {} } = options;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new TypeError(`Expected \`version\` of agent type "${type}" to be an integer ≥ 1, got \`${String(version)}\` (${typeof version})`);
  }
  if (typeof migrate !== 'object' || migrate === null || Array.isArray(migrate)) {
    throw new TypeError(`Expected \`migrate\` of agent type "${type}" to be an object of steps keyed by version, got \`${String(migrate)}\``);
  }
  for (const [key, step] of Object.entries(migrate)) {
    const v = Number(key);
    if (!Number.isSafeInteger(v) || v < 2 || v > version || typeof step !== 'function') {
      throw new TypeError(
        `Expected every key of \`migrate\` of agent type "${type}" to be a version from 2 to ${version} (the version its step produces) ` +
          `with a function as its step, got ${JSON.stringify(key)}: ${typeof step}`,
      );
    }
  }
  const { history } = options;
  if (history !== undefined) assertRetention(history, ` of agent type "${type}"`);
  const retention = history === undefined || history === 'all' ? history : Object.freeze({ keepTurns: history.keepTurns });
  return Object.freeze({ type, logic, redeliverCrashed, version, migrate: Object.freeze({ ...migrate }), history: retention });
}
