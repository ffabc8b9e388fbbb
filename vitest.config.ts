import { configDefaults, defineConfig } from 'vitest/config'

const integrationTests = 'test/**/*.integration.test.ts'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, integrationTests],
        },
      },
      {
        test: {
          name: 'integration',
          include: [integrationTests],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // The files share one pair of servers per database and pause or kill its replica.
          fileParallelism: false,
        },
      },
    ],
  },
})
