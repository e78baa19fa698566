/**
 * A preload (node --import) that makes better-sqlite3 unresolvable in this process, as if
 * it were not installed or its native module could not be built: for `require` (and
 * `createRequire`), by patching Module._resolveFilename, and for ES module `import`, by a
 * resolve hook. Used by test/store/lazyDriver.test.ts.
 */
import Module, { register } from 'node:module';

const NAME = 'better-sqlite3';
const blocked = (specifier) => specifier === NAME || specifier.startsWith(`${NAME}/`);

const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (typeof request === 'string' && blocked(request)) {
    const error = new Error(`Cannot find module '${request}' (made unresolvable by withoutSqliteDriver.mjs)`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return resolveFilename.call(this, request, ...rest);
};

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(NAME)} || specifier.startsWith(${JSON.stringify(`${NAME}/`)})) {
    const error = new Error("Cannot find package '" + specifier + "' (made unresolvable by withoutSqliteDriver.mjs)");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
