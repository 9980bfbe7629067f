"""Build the sample SQLite databases (shop, hr, music) from seeded synthetic data.

    python sample_dbs/build.py [--out DIR]

Every value comes from a ``random.Random`` with a fixed seed per database and from the word
lists in ``_vocab.py``; nothing reads the clock, so two runs give byte-identical files for a
given SQLite version. Each file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

try:
    from sample_dbs import _vocab as vocab
except ImportError:  # run as a script: python sample_dbs/build.py
    import _vocab as vocab  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
DATA_END = date(2024, 12, 31)  # the data's "today": nothing is dated after it
T = TypeVar("T")


# ----------------------------------------------------------------------------- helpers


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return date.fromordinal(rng.randint(start.toordinal(), end.toordinal()))


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[tuple]) -> None:
    rows = list(rows)
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def _pick(rng: random.Random, weights: dict[T, int]) -> T:
    """One key of ``weights``, drawn with the given relative weights."""
    return rng.choices(list(weights), list(weights.values()))[0]


def _unique(make: Callable[[], str], taken: set[str]) -> str:
    """Draw from ``make`` until the value is new; numbered suffixes only as a last resort."""
    for _ in range(50):
        value = make()
        if value not in taken:
            break
    suffix = 2
    while value in taken:
        value, suffix = f"{value.rsplit(' #', 1)[0]} #{suffix}", suffix + 1
    taken.add(value)
    return value


def _email(first: str, last: str, domain: str, taken: set[str]) -> str:
    local = f"{first}.{last}".lower().replace("'", "")
    email, n = f"{local}@{domain}", 2
    while email in taken:
        email, n = f"{local}{n}@{domain}", n + 1
    taken.add(email)
    return email


# ----------------------------------------------------------------------------- shop


def _order_status(rng: random.Random, day: date) -> str:
    """Recent orders are still in flight; older ones have settled."""
    age = (DATA_END - day).days
    if age < 21:
        return _pick(rng, {"pending": 55, "shipped": 40, "cancelled": 5})
    if age < 45:
        return _pick(rng, {"shipped": 55, "delivered": 40, "cancelled": 5})
    return _pick(rng, {"delivered": 82, "cancelled": 11, "returned": 7})


def _fill_shop(conn: sqlite3.Connection, rng: random.Random) -> None:
    categories, products = [], []
    for cat_id, (name, (desc, typical)) in enumerate(vocab.SHOP_CATEGORIES.items(), 1):
        categories.append((cat_id, name, desc))
        for noun, base in typical.items():
            # Same product, different brands: spread around the typical price, ending in .99.
            price = max(1, round(base * rng.uniform(0.75, 1.3))) - 0.01
            stock = 0 if rng.random() < 0.08 else rng.randint(1, 400)
            name = f"{rng.choice(vocab.BRANDS)} {noun}"
            products.append((len(products) + 1, name, cat_id, round(price, 2), stock))
    _insert(conn, "categories", categories)
    _insert(conn, "products", products)

    customers, emails = [], set()
    for cid in range(1, 301):
        first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
        city, country = rng.choice(vocab.CITIES)
        domain = rng.choice(["example.com", "example.org", "example.net"])
        signup = _random_date(rng, date(2021, 1, 1), date(2024, 6, 30))
        tier = _pick(rng, {"bronze": 60, "silver": 28, "gold": 12})
        email = _email(first, last, domain, emails)
        customers.append((cid, first, last, email, city, country, signup.isoformat(), tier))
    _insert(conn, "customers", customers)

    # Uneven activity (some customers never order, a few order a lot) and a growing business.
    activity = [rng.choice([0, 1, 1, 2, 3, 5, 8]) for _ in customers]
    drafts = []
    for _ in range(700):
        year = _pick(rng, {2022: 25, 2023: 33, 2024: 42})
        day = _random_date(rng, date(year, 1, 1), date(year, 12, 31))
        signed_up = [c[0] for c in customers if c[6] <= day.isoformat()]
        cust = rng.choices(signed_up, [activity[cid - 1] for cid in signed_up])[0]
        payment = _pick(rng, {"credit_card": 55, "paypal": 25, "debit_card": 12, "gift_card": 8})
        drafts.append((day.isoformat(), cust, _order_status(rng, day), payment))
    drafts.sort()
    orders = [
        (oid, cust, day, status, pay) for oid, (day, cust, status, pay) in enumerate(drafts, 1)
    ]
    _insert(conn, "orders", orders)

    popularity = [rng.choice([1, 1, 2, 3, 6]) for _ in products]
    items, reviews, reviewed = [], [], set()
    for oid, cust, day, status, _ in orders:
        chosen: list[tuple] = []
        for _ in range(_pick(rng, {1: 35, 2: 30, 3: 18, 4: 10, 5: 7})):
            product = rng.choices(products, popularity)[0]
            if product not in chosen:
                chosen.append(product)
        for product in chosen:
            discount = rng.choice([0.9, 0.85, 0.8]) if rng.random() < 0.1 else 1.0
            qty = _pick(rng, {1: 70, 2: 20, 3: 7, 4: 3})
            items.append((len(items) + 1, oid, product[0], qty, round(product[3] * discount, 2)))
            if status == "delivered" and (cust, product[0]) not in reviewed and rng.random() < 0.35:
                reviewed.add((cust, product[0]))
                rating = _pick(rng, {1: 6, 2: 7, 3: 15, 4: 32, 5: 40})
                when = date.fromisoformat(day) + timedelta(days=rng.randint(3, 60))
                comment = rng.choice(vocab.REVIEW_COMMENTS[rating])
                review = (product[0], cust, rating, when.isoformat(), comment)
                reviews.append((len(reviews) + 1, *review))
    _insert(conn, "order_items", items)
    _insert(conn, "reviews", reviews)


# ----------------------------------------------------------------------------- hr


def _salary_history(rng: random.Random, emp_id: int, hired: date, salary: int) -> list[tuple]:
    """Raises every one to three years since hiring, ending at the current salary."""
    starts = [hired]
    while True:
        nxt = starts[-1] + timedelta(days=rng.randint(330, 1100))
        if nxt > DATA_END:
            break
        starts.append(nxt)
    amounts = [salary]
    for _ in starts[1:]:
        amounts.append(round(amounts[-1] / (1 + rng.randint(3, 9) / 100) / 100) * 100)
    amounts.reverse()
    ends = [(s - timedelta(days=1)).isoformat() for s in starts[1:]] + [None]
    return [
        (emp_id, amt, s.isoformat(), e) for amt, s, e in zip(amounts, starts, ends, strict=True)
    ]


def _fill_hr(conn: sqlite3.Connection, rng: random.Random) -> None:
    _insert(conn, "locations", [(i, *loc) for i, loc in enumerate(vocab.HR_LOCATIONS, 1)])
    departments, jobs = [], []
    for dept_id, (name, (loc, _, dept_jobs)) in enumerate(vocab.HR_DEPARTMENTS.items(), 1):
        departments.append((dept_id, name, loc + 1))
        jobs.extend((len(jobs) + 1, *job) for job in dept_jobs)
    _insert(conn, "departments", departments)
    _insert(conn, "jobs", jobs)
    job_ids = {title: (jid, lo, hi) for jid, title, lo, hi in jobs}

    sales_id = list(vocab.HR_DEPARTMENTS).index("Sales") + 1
    employees, history, emails = [], [], set()

    def hire(title: str, dept_id: int, manager: int | None, first_year: int, last_year: int) -> int:
        emp_id = len(employees) + 1
        first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
        job_id, lo, hi = job_ids[title]
        salary = rng.randrange(lo, hi + 1, 500)
        hired = _random_date(rng, date(first_year, 1, 1), date(last_year, 12, 31))
        commission = rng.choice([0.05, 0.1, 0.15, 0.2]) if dept_id == sales_id else None
        phone = f"+1 {rng.randint(201, 989)} 555 {rng.randint(0, 9999):04d}"
        email = _email(first, last, "corp.example.com", emails)
        person = (emp_id, first, last, email, phone, hired.isoformat())
        employees.append((*person, job_id, salary, commission, manager, dept_id))
        history.extend(_salary_history(rng, emp_id, hired, salary))
        return emp_id

    # The first department is the executive office; its head (employee 1) is the CEO.
    ceo = None
    for dept_id, (_, headcount, dept_jobs) in enumerate(vocab.HR_DEPARTMENTS.values(), 1):
        boss_title, staff_titles = dept_jobs[0][0], [job[0] for job in dept_jobs[1:]]
        first_year, last_year = (2009, 2009) if ceo is None else (2010, 2016)
        head = hire(boss_title, dept_id, ceo, first_year, last_year)
        ceo = ceo or head
        leads = [head] + [
            hire(boss_title, dept_id, head, 2011, 2021) for _ in range((headcount - 1) // 12)
        ]
        for _ in range(headcount - len(leads)):
            hire(rng.choice(staff_titles), dept_id, rng.choice(leads), 2012, 2024)
    _insert(conn, "employees", employees)
    _insert(conn, "salary_history", [(i, *row) for i, row in enumerate(history, 1)])


# ----------------------------------------------------------------------------- music


def _title(rng: random.Random) -> str:
    noun, other = rng.choice(vocab.TITLE_WORDS), rng.choice(vocab.TITLE_WORDS)
    adj = rng.choice(vocab.TITLE_ADJECTIVES)
    patterns = [f"{adj} {noun}", f"{noun} of {other}", f"The {noun}", noun]
    return rng.choice([*patterns, f"{noun} in the {other}", f"Under the {adj} {noun}"])


def _artist_name(rng: random.Random, kind: str) -> str:
    if kind == "solo":
        return f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"
    band = f"{rng.choice(vocab.BAND_ADJECTIVES)} {rng.choice(vocab.BAND_NOUNS)}"
    return f"The {band}" if rng.random() < 0.5 else band


def _fill_music(conn: sqlite3.Connection, rng: random.Random) -> None:
    genre_ids = list(range(1, len(vocab.GENRES) + 1))
    _insert(conn, "genres", list(zip(genre_ids, vocab.GENRES, strict=True)))

    artists, names = [], set()
    for aid in range(1, 91):
        kind = "band" if rng.random() < 0.55 else "solo"
        name = _unique(partial(_artist_name, rng, kind), names)
        genre = rng.choices(genre_ids, [14, 12, 7, 9, 8, 3, 6, 4, 3, 5, 5, 6])[0]
        reggae = genre == vocab.GENRES.index("Reggae") + 1
        country = "Jamaica" if reggae else rng.choice(vocab.ARTIST_COUNTRIES)
        artists.append((aid, name, kind, country, rng.randint(1968, 2020), genre))
    _insert(conn, "artists", artists)

    albums, tracks = [], []
    for aid, _, _, _, formed, genre in artists:
        days = sorted(
            _random_date(rng, date(formed, 6, 1), date(2024, 11, 30))
            for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 3, 4, 5]))
        )
        for day in days:
            album_id = len(albums) + 1
            album_genre = genre if rng.random() < 0.85 else rng.choice(genre_ids)
            label = rng.choice(vocab.RECORD_LABELS)
            albums.append((album_id, aid, _title(rng), day.isoformat(), album_genre, label))
            classical = album_genre == vocab.GENRES.index("Classical") + 1
            explicit_rate = 0.6 if album_genre == vocab.GENRES.index("Hip Hop") + 1 else 0.05
            for number in range(1, rng.randint(6, 12) + 1):
                seconds = rng.randint(300, 1100) if classical else rng.randint(125, 420)
                explicit = int(rng.random() < explicit_rate)
                tracks.append((len(tracks) + 1, album_id, _title(rng), number, seconds, explicit))
    _insert(conn, "albums", albums)
    _insert(conn, "tracks", tracks)

    _insert(conn, "venues", [(i, *v) for i, v in enumerate(vocab.VENUES, 1)])
    fame = [rng.choice([1, 1, 2, 4, 8]) for _ in artists]
    drafts = []
    for _ in range(260):
        venue_id = rng.randint(1, len(vocab.VENUES))
        capacity = vocab.VENUES[venue_id - 1][3]
        price = round(2 * (rng.uniform(25, 60) + capacity / 200)) / 2  # bigger room, pricier seat
        attendance = int(capacity * rng.uniform(0.55, 1.0))
        acts: list[int] = []
        for _ in range(rng.choice([1, 2, 2, 3])):
            artist = rng.choices(artists, fame)[0][0]
            if artist not in acts:
                acts.append(artist)
        day = _random_date(rng, date(2019, 1, 1), DATA_END).isoformat()
        drafts.append((day, venue_id, price, attendance, acts))
    drafts.sort(key=lambda d: (d[0], d[1]))
    concerts, performers = [], []
    for cid, (day, venue_id, price, attendance, acts) in enumerate(drafts, 1):
        concerts.append((cid, venue_id, day, price, attendance))
        performers.extend((cid, artist, int(n == 0)) for n, artist in enumerate(acts))
    _insert(conn, "concerts", concerts)
    _insert(conn, "concert_performers", performers)


# ----------------------------------------------------------------------------- build

# name -> (function that fills the tables of schema/<name>.sql, random seed)
DATABASES: dict[str, tuple[Callable[[sqlite3.Connection, random.Random], None], int]] = {
    "shop": (_fill_shop, 1001),
    "hr": (_fill_hr, 2002),
    "music": (_fill_music, 3003),
}


def build_one(name: str, out_dir: Path) -> Path:
    """Build ``<out_dir>/<name>.sqlite`` from scratch and return its path."""
    fill, seed = DATABASES[name]
    schema = (HERE / "schema" / f"{name}.sql").read_text(encoding="utf-8")
    target = out_dir / f"{name}.sqlite"
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(tmp)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA foreign_keys=ON")  # so a generator bug fails the build
            conn.executescript(schema)
            with conn:
                fill(conn, random.Random(seed))
            if conn.execute("PRAGMA foreign_key_check").fetchall():
                raise RuntimeError(f"{name}: foreign key violations")
            conn.execute("VACUUM")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def build_all(out_dir: Path | str = HERE) -> list[Path]:
    """Build every sample database into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [build_one(name, out_dir) for name in DATABASES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    for path in build_all(args.out):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            counts = [
                f"{t} {conn.execute(f'SELECT count(*) FROM {t}').fetchone()[0]}" for t in tables
            ]
        print(f"{path}: {', '.join(counts)}")


if __name__ == "__main__":
    main()
