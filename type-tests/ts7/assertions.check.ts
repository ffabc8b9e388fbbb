/**
 * The assertions of assertions.ts reject what tsd rejects: each `@ts-expect-error` below must be used, so a
 * shim that stopped failing would fail this file (TS2578) in `npm run test:types:ts7`.
 */
import { expectAssignable, expectNotAssignable, expectType } from './assertions.js'

declare const str: string
declare const lit: 'a'
declare const obj: { id: number; name: string }
declare const anyValue: any
declare const promise: Promise<{ id: number }[]>

// --- expectType: identical only -------------------------------------------------------------------

expectType<string>()(str)
expectType<'a'>()(lit)
expectType<{ id: number; name: string }>()(obj)
expectType<Promise<{ id: number }[]>>()(promise)
// @ts-expect-error: wider than declared (tsd: "declared too wide")
expectType<string>()(lit)
// @ts-expect-error: narrower than declared
expectType<'a'>()(str)
// @ts-expect-error: a property more
expectType<{ id: number }>()(obj)
// @ts-expect-error: a property less
expectType<{ id: number; name: string; email: string }>()(obj)
// @ts-expect-error: optional vs required
expectType<{ id: number; name?: string }>()(obj)
// @ts-expect-error: any is identical to nothing else
expectType<string>()(anyValue)
// @ts-expect-error: nor is a wrong element type
expectType<Promise<{ id: string }[]>>()(promise)
// @ts-expect-error: nor a union that merely contains the type
expectType<string | undefined>()(str)

// --- expectAssignable / expectNotAssignable -------------------------------------------------------

expectAssignable<string>(lit)
expectAssignable<{ id: number }>(obj)
// @ts-expect-error: not assignable
expectAssignable<number>(str)

expectNotAssignable<number>()(str)
expectNotAssignable<{ email: string }>()(obj)
// @ts-expect-error: assignable after all
expectNotAssignable<string>()(lit)
// @ts-expect-error: a subtype is assignable
expectNotAssignable<{ id: number }>()(obj)
