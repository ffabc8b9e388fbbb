// An e-commerce flow: the catalogue is browsed on replicas; an order is placed in one transaction on the
// primary (stock decremented, order and lines inserted, order read back); a shopper's session then reads
// its own order and the stock it took, on a replica that has replayed them or on the primary.
//
//   npx tsx examples/shop.ts      (see examples/support/connection.ts for PRIMARY_URL & co.)
import { randomUUID } from 'node:crypto'
import { type CanRead, createBackends, type WriteBackend } from '../src/index.js'
import { connection, describeConnection } from './support/connection.js'

interface ShopDB {
  products: { sku: string; name: string; price_cents: number; stock: number }
  orders: { id: string; customer: string; total_cents: number }
  order_lines: { order_id: string; sku: string; quantity: number; price_cents: number }
}

// Reads: any backend that can read.

function browseCatalogue(db: CanRead<ShopDB>) {
  return db
    .selectFrom('products')
    .select(['sku', 'name', 'price_cents', 'stock'])
    .where('stock', '>', 0)
    .orderBy('sku')
    .execute()
}

async function findOrder(db: CanRead<ShopDB>, id: string) {
  const order = await db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst()
  if (!order) return undefined
  const lines = await db
    .selectFrom('order_lines')
    .innerJoin('products', 'products.sku', 'order_lines.sku')
    .select(['products.name', 'order_lines.quantity', 'order_lines.price_cents'])
    .where('order_lines.order_id', '=', id)
    .orderBy('products.name')
    .execute()
  return { ...order, lines }
}

// Writes: the primary only.

class OutOfStockError extends Error {
  override readonly name = 'OutOfStockError'
  constructor(readonly sku: string) {
    super(`Not enough "${sku}" in stock.`)
  }
}

/** Places an order atomically: all of it or, if any line is out of stock, none of it. */
function placeOrder(db: WriteBackend<ShopDB>, customer: string, items: { sku: string; quantity: number }[]) {
  return db.transaction().execute(async (tx) => {
    const id = randomUUID()
    const lines = []
    for (const { sku, quantity } of items) {
      // Decrements only if enough is left: concurrent orders cannot oversell.
      const taken = await tx
        .updateTable('products')
        .set((eb) => ({ stock: eb('stock', '-', quantity) }))
        .where('sku', '=', sku)
        .where('stock', '>=', quantity)
        .executeTakeFirst()
      if (taken.numUpdatedRows === 0n) throw new OutOfStockError(sku)
      const { price_cents } = await tx
        .selectFrom('products')
        .select('price_cents')
        .where('sku', '=', sku)
        .executeTakeFirstOrThrow()
      lines.push({ order_id: id, sku, quantity, price_cents })
    }
    const total = lines.reduce((sum, line) => sum + line.quantity * line.price_cents, 0)
    await tx.insertInto('orders').values({ id, customer, total_cents: total }).execute()
    await tx.insertInto('order_lines').values(lines).execute()
    // Read back on the transaction's connection: it sees the order before anyone else can.
    return (await findOrder(tx, id))!
  })
}

/** The schema and the catalogue, in one transaction: kysely-rw raises its schema floor at the COMMIT, so
 * no read below runs on a replica that has not replayed them. */
async function setUpShop(db: WriteBackend<ShopDB>) {
  await db.transaction().execute(async (tx) => {
    for (const table of ['order_lines', 'orders', 'products'] as const) {
      await tx.schema.dropTable(table).ifExists().execute()
    }
    await tx.schema
      .createTable('products')
      .addColumn('sku', 'varchar(20)', (col) => col.primaryKey())
      .addColumn('name', 'varchar(100)', (col) => col.notNull())
      .addColumn('price_cents', 'integer', (col) => col.notNull())
      .addColumn('stock', 'integer', (col) => col.notNull())
      .execute()
    await tx.schema
      .createTable('orders')
      .addColumn('id', 'varchar(36)', (col) => col.primaryKey())
      .addColumn('customer', 'varchar(100)', (col) => col.notNull())
      .addColumn('total_cents', 'integer', (col) => col.notNull())
      .execute()
    await tx.schema
      .createTable('order_lines')
      .addColumn('order_id', 'varchar(36)', (col) => col.notNull().references('orders.id'))
      .addColumn('sku', 'varchar(20)', (col) => col.notNull().references('products.sku'))
      .addColumn('quantity', 'integer', (col) => col.notNull())
      .addColumn('price_cents', 'integer', (col) => col.notNull())
      .addPrimaryKeyConstraint('order_lines_pk', ['order_id', 'sku'])
      .execute()
    await tx
      .insertInto('products')
      .values([
        { sku: 'kettle', name: 'Kettle', price_cents: 39_00, stock: 3 },
        { sku: 'mug', name: 'Mug', price_cents: 8_50, stock: 10 },
        { sku: 'teapot', name: 'Teapot', price_cents: 24_00, stock: 1 },
      ])
      .execute()
  })
}

const show = (rows: { sku: string; stock: number }[]) => rows.map((row) => `${row.sku} x${row.stock}`).join(', ')

const config = connection()
console.log(describeConnection(config))
const db = createBackends<ShopDB>(config)
await setUpShop(db.write)

// Anyone browsing: plain reads on the replicas.
console.log('catalogue:', show(await browseCatalogue(db.read)))

// A shopper's session: its reads never see data older than its own writes.
const shopper = db.session()
const order = await placeOrder(shopper.write, 'ada@example.com', [
  { sku: 'kettle', quantity: 1 },
  { sku: 'mug', quantity: 2 },
])
const lines = order.lines.map((line) => `${line.quantity} ${line.name}`).join(' + ')
console.log(`order placed and read back in its transaction: ${lines} = ${order.total_cents} cents`)

// Two teapots, one in stock: the whole order is rolled back, the mug it took first included.
try {
  await placeOrder(shopper.write, 'ada@example.com', [
    { sku: 'mug', quantity: 1 },
    { sku: 'teapot', quantity: 2 },
  ])
} catch (error) {
  if (!(error instanceof OutOfStockError)) throw error
  console.log('second order refused:', error.message, 'Nothing of it was written.')
}

// The shopper's next pages: their order, and the stock it took.
const confirmation = await findOrder(shopper.read, order.id)
console.log(`order page: ${confirmation?.lines.length} lines, ${confirmation?.total_cents} cents`)
console.log('catalogue in the shopper session:', show(await browseCatalogue(shopper.read)))

await db.destroy()
