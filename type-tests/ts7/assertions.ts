/**
 * tsd's assertions as plain types, for compilers tsd cannot drive (TypeScript 7 has no compiler API).
 *
 * scripts/ts7-type-tests.ts generates type-tests/ts7/generated/ from type-tests/*.test-d.ts and points their
 * `from 'tsd'` imports here:
 *
 * | tsd                            | generated                                 | fails when                              |
 * |--------------------------------|-------------------------------------------|-----------------------------------------|
 * | `expectType<T>(v)`             | `expectType<T>()(v)`                      | v's type is not identical to T          |
 * | `expectAssignable<T>(v)`       | unchanged                                 | v is not assignable to T                |
 * | `expectNotAssignable<T>(v)`    | `expectNotAssignable<T>()(v)`             | v is assignable to T                    |
 * | `expectError(v)`               | `// @ts-expect-error` then `;(v)`         | v compiles (TS2578, unused directive)   |
 *
 * `expectType` is curried because TypeScript cannot infer one type argument while another is given. Nothing
 * here runs: the generated files are only type-checked (`tsc --noEmit`).
 */

/**
 * True when A and B are identical: the identity relation tsd's `expectType` uses (not mutual assignability),
 * so `any`, a wider or a narrower type all fail.
 */
export type Identical<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false

/**
 * `expectType<T>()(value)`: the value's type is identical to T. A value not assignable to T fails the parameter;
 * an identical-but-narrower one (or `any`) fails the rest parameter ("Expected 2 arguments, but got 1").
 */
export declare function expectType<T>(): <U extends T>(
  value: U,
  ...notIdentical: Identical<T, U> extends true ? [] : [notIdenticalTo: T]
) => void

/** `expectAssignable<T>(value)`: the value is assignable to T (the same declaration as tsd's). */
export declare function expectAssignable<T>(value: T): void

/** `expectNotAssignable<T>()(value)`: the value is not assignable to T. */
export declare function expectNotAssignable<T>(): <U>(
  value: U,
  ...assignable: [U] extends [T] ? [assignableTo: T] : []
) => void

/**
 * Never called by generated files (each `expectError(v)` becomes a `// @ts-expect-error` line); here so the
 * rewritten `import { expectError } from …` still resolves.
 */
export declare function expectError(value: unknown): void
