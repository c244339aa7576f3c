/**
 * The users the benchmark logs in as: one registered through the API, so its hash is the app's own at the
 * configured cost; the rest SQL copies of that row with other emails. Registering N users through the API
 * would cost N bcrypt hashes (≈ 30 s for 200 at cost 12 here, more for the reference), yet every login still
 * verifies a real hash at the configured cost. Works on both schemas (our `users`, SQLModel's `user`).
 */
import postgres from 'postgres';
import type { Target } from './servers';

export interface SeededUsers {
  /** Users are <prefix><i>@example.com, i from 0 to count - 1. */
  prefix: string;
  password: string;
  count: number;
}

/** Seeds the users, warms the server up (200 × GET /users/me and /welcome) and returns a valid access token. */
export async function seed(t: Pick<Target, 'name' | 'base' | 'db'>, users: SeededUsers): Promise<string> {
  const { prefix, password, count } = users;
  const email = `${prefix}0@example.com`;
  const reg = await fetch(`${t.base}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!reg.ok) throw new Error(`${t.name}: POST /register answered ${reg.status}: ${await reg.text()}`);
  const sql = postgres(t.db.url as string, { max: 1, onnotice: () => {} });
  try {
    const [table] = await sql<{ table_name: string }[]>`select table_name from information_schema.columns
      where table_schema = 'public' and table_name in ('users', 'user') and column_name = 'email'`;
    if (!table) throw new Error(`${t.name}: no users table with an email column`);
    const columns = (
      await sql<{ column_name: string }[]>`select column_name from information_schema.columns
        where table_schema = 'public' and table_name = ${table.table_name} and column_name <> 'email'
          and is_identity = 'NO' and is_generated = 'NEVER' and coalesce(column_default, '') not like 'nextval(%'`
    )
      .map((c) => `"${c.column_name.replaceAll('"', '""')}"`)
      .join(', ');
    const from = `"${table.table_name}"`;
    await sql.unsafe(
      `insert into ${from} (email, ${columns}) select $1::text || i || '@example.com', ${columns}
       from ${from}, generate_series(1, $2::int - 1) i where email = $3`,
      [prefix, count, email],
    );
  } finally {
    await sql.end();
  }
  const login = await fetch(`${t.base}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: `${prefix}${count - 1}@example.com`, password }),
  });
  if (login.status !== 200) throw new Error(`${t.name}: POST /token answered ${login.status}: ${await login.text()}`);
  const { access_token } = (await login.json()) as { access_token: string };
  for (let i = 0; i < 200; i++) {
    for (const path of ['/users/me', '/welcome']) {
      const r = await fetch(t.base + path, { headers: { authorization: `Bearer ${access_token}` } });
      if (r.status !== 200) throw new Error(`${t.name}: GET ${path} answered ${r.status}: ${await r.text()}`);
    }
  }
  return access_token;
}
