/**
 * Loads the Reflect metadata polyfill that @simplewebauthn/server's certificate code needs (tsyringe, via
 * @peculiar/x509, refuses to load without it). An ES module of its own, imported before the library: Bun's
 * bundler (the single binary) runs a module's CommonJS imports after its ES module imports, so the library's
 * own `import 'reflect-metadata'` comes too late there, whereas ES modules keep their order.
 */
import 'reflect-metadata';
