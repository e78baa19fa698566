/**
 * `defineAgent`: what an agent of one type does.
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
}

export interface DefineAgentOptions {
  type: string;
  logic: AnyStateMachine;
  redeliverCrashed?: boolean;
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
  return Object.freeze({ type, logic, redeliverCrashed });
}
