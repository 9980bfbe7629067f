"""engine/explain.py: every gold query of the sample databases gets words naming its tables,
each query shape reads exactly as written here, and what is not one SELECT gets ""."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlglot import exp, parse_one

from engine.explain import explain

PAIRS = Path(__file__).resolve().parent.parent / "sample_dbs" / "pairs"
GOLD = [
    p["query"]
    for name in ("shop", "hr", "music")
    for p in json.loads((PAIRS / f"{name}.json").read_text())
]


@pytest.mark.parametrize("sql", GOLD)
def test_every_gold_query_is_explained_with_its_tables(sql):
    text = explain(sql)
    assert text.startswith("- ")
    tree = parse_one(sql, read="sqlite")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    for table in {t.name for t in tree.find_all(exp.Table)} - ctes:
        assert f"**{table}**" in text, table


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        "this is not sql",
        "SELECT FROM WHERE (",
        "DELETE FROM t",
        "SELECT 1; SELECT 2",
        "UPDATE t SET a = 1",
        "CREATE TABLE t (a INT)",
    ],
)
def test_what_is_not_one_select_gets_nothing(sql):
    assert explain(sql) == ""


def test_an_unknown_function_is_shown_as_sql():
    assert "`WEIRD_FN(a)`" in explain("SELECT weird_fn(a) FROM t")


CASES = [
    (
        "sqlite",
        "SELECT first_name, last_name FROM customers WHERE city = 'Paris'",
        [
            "- Reads **customers**.",
            "- Keeps only the rows where city is 'Paris'.",
            "- Shows first_name and last_name.",
        ],
    ),
    (
        "sqlite",
        "SELECT p.name, p.price FROM products AS p JOIN categories AS c ON p.category_id = c.category_id WHERE c.name = 'Books'",
        [
            "- Reads **products**, matched with **categories** (same category_id).",
            "- Keeps only the rows where categories.name is 'Books'.",
            "- Shows name and price.",
        ],
    ),
    (
        "sqlite",
        "SELECT c.first_name, c.last_name, SUM(oi.quantity * oi.unit_price) AS total_spent FROM customers c JOIN orders o ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id WHERE o.status = 'delivered' GROUP BY c.customer_id ORDER BY total_spent DESC, c.customer_id LIMIT 5",
        [
            "- Reads **customers**, matched with **orders** (same customer_id) and **order_items** (same order_id as orders).",
            "- Keeps only the rows where orders.status is 'delivered'.",
            "- Groups the rows by customers.customer_id (one result row per group).",
            "- Shows for each group: first_name, last_name and the sum of order_items.quantity × order_items.unit_price (as total_spent).",
            "- Sorts by total_spent (highest first), then by customers.customer_id (lowest first).",
            "- Returns the first 5 rows.",
        ],
    ),
    (
        "sqlite",
        "SELECT order_id FROM order_items GROUP BY order_id HAVING count(DISTINCT product_id) >= 5",
        [
            "- Reads **order_items**.",
            "- Groups the rows by order_id (one result row per group).",
            "- Keeps only the groups where the number of different product_id is at least 5.",
            "- Shows for each group: order_id.",
        ],
    ),
    (
        "sqlite",
        "SELECT first_name, last_name FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM orders)",
        [
            "- Reads **customers**.",
            "- Keeps only the rows where customer_id is not among the values found by the nested step below.",
            "  - Reads **orders**.",
            "  - Shows customer_id.",
            "- Shows first_name and last_name.",
        ],
    ),
    (
        "sqlite",
        "SELECT count(*) FROM orders WHERE order_date BETWEEN '2023-01-01' AND '2023-12-31'",
        [
            "- Reads **orders**.",
            "- Keeps only the rows where order_date is from '2023-01-01' to '2023-12-31' (both included).",
            "- Shows the number of rows.",
            "- Note: SQLite stores dates as text (YYYY-MM-DD), so they are compared and matched as text; that works because this form sorts like the dates themselves.",
        ],
    ),
    (
        "sqlite",
        "SELECT c.name FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE o.order_id IS NULL",
        [
            "- Reads **customers**, with any matching **orders** (same customer_id), keeping rows that have no match.",
            "- Keeps only the rows where orders.order_id is empty (so there is no matching **orders** row).",
            "- Shows name.",
        ],
    ),
    (
        "sqlite",
        "SELECT e.first_name, m.first_name AS manager FROM employees e JOIN employees m ON e.manager_id = m.employee_id",
        [
            "- Reads **employees** as e, matched with **employees** as m (where e.manager_id is the same as m.employee_id).",
            "- Shows e.first_name and m.first_name (as manager).",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)",
        [
            "- Reads **customers**.",
            "- Keeps only the rows where the nested step below finds no row.",
            "  - Reads **orders**.",
            "  - Keeps only the rows where customer_id is the same as customers.customer_id of the outer row.",
            "  - Shows 1.",
            "- Shows name.",
        ],
    ),
    (
        "sqlite",
        "SELECT name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.customer_id) AS n FROM customers c",
        [
            "- Reads **customers**.",
            "- Shows name and the value found by the nested step below (as n).",
            "  - Reads **orders**.",
            "  - Keeps only the rows where customer_id is the same as customers.customer_id of the outer row.",
            "  - Shows the number of rows.",
        ],
    ),
    (
        "sqlite",
        "WITH big AS (SELECT customer_id, sum(total) AS spent FROM orders GROUP BY customer_id HAVING sum(total) > 1000) SELECT c.name, b.spent FROM big b JOIN customers c USING (customer_id) ORDER BY b.spent DESC",
        [
            "- First, builds **big**:",
            "  - Reads **orders**.",
            "  - Groups the rows by customer_id (one result row per group).",
            "  - Keeps only the groups where the sum of total is more than 1000.",
            "  - Shows for each group: customer_id and the sum of total (as spent).",
            "- Reads **big**, matched with **customers** (same customer_id).",
            "- Shows name and spent.",
            "- Sorts by big.spent (highest first).",
        ],
    ),
    (
        "sqlite",
        "SELECT city FROM customers UNION SELECT city FROM venues ORDER BY city",
        [
            "- Combines the rows of these queries, dropping repeated rows:",
            "  - Query 1:",
            "    - Reads **customers**.",
            "    - Shows city.",
            "  - Query 2:",
            "    - Reads **venues**.",
            "    - Shows city.",
            "- Sorts by city (lowest first).",
        ],
    ),
    (
        "sqlite",
        "SELECT city FROM customers UNION ALL SELECT city FROM venues UNION ALL SELECT city FROM locations",
        [
            "- Combines all the rows of these queries, repeats included:",
            "  - Query 1:",
            "    - Reads **customers**.",
            "    - Shows city.",
            "  - Query 2:",
            "    - Reads **venues**.",
            "    - Shows city.",
            "  - Query 3:",
            "    - Reads **locations**.",
            "    - Shows city.",
        ],
    ),
    (
        "sqlite",
        "SELECT customer_id FROM customers INTERSECT SELECT customer_id FROM orders",
        [
            "- Keeps only the rows that every one of these queries returns:",
            "  - Query 1:",
            "    - Reads **customers**.",
            "    - Shows customer_id.",
            "  - Query 2:",
            "    - Reads **orders**.",
            "    - Shows customer_id.",
        ],
    ),
    (
        "sqlite",
        "SELECT customer_id FROM customers EXCEPT SELECT customer_id FROM orders",
        [
            "- Takes the rows of the first query and removes any that the others return:",
            "  - Query 1:",
            "    - Reads **customers**.",
            "    - Shows customer_id.",
            "  - Query 2:",
            "    - Reads **orders**.",
            "    - Shows customer_id.",
        ],
    ),
    (
        "sqlite",
        "SELECT name, department_id, salary, RANK() OVER (PARTITION BY department_id ORDER BY salary DESC) AS pos FROM employees",
        [
            "- Reads **employees**.",
            "- Shows name; department_id; salary and the rank by salary, highest first (ties share a place) within each department_id (as pos).",
        ],
    ),
    (
        "sqlite",
        "SELECT name, ROW_NUMBER() OVER (ORDER BY hire_date) AS n, SUM(salary) OVER (PARTITION BY department_id) AS dept_total FROM employees",
        [
            "- Reads **employees**.",
            "- Shows name; the row's position (1, 2, 3, …) by hire_date, earliest first (as n) and the sum of salary within each department_id (as dept_total).",
        ],
    ),
    (
        "sqlite",
        "SELECT name, CASE WHEN price < 10 THEN 'cheap' WHEN price < 100 THEN 'fair' ELSE 'dear' END AS band FROM products",
        [
            "- Reads **products**.",
            "- Shows name and 'cheap' when price is less than 10, 'fair' when price is less than 100, otherwise 'dear' (as band).",
        ],
    ),
    (
        "sqlite",
        "SELECT count(*) FROM orders WHERE strftime('%Y', order_date) = '2024'",
        [
            "- Reads **orders**.",
            "- Keeps only the rows where the year of order_date is '2024'.",
            "- Shows the number of rows.",
            "- Note: SQLite stores dates as text (YYYY-MM-DD), so they are compared and matched as text; that works because this form sorts like the dates themselves. strftime(…) reads a part such as the year out of that date text.",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM customers WHERE signup_date >= date('now', '-30 days') AND julianday('now') - julianday(signup_date) < 60",
        [
            "- Reads **customers**.",
            "- Keeps only the rows where signup_date is on or after 30 days before today's date and the number of days from signup_date to now is less than 60.",
            "- Shows name.",
            "- Note: date('now') is today's date by the database's clock (UTC). julianday(…) turns a date into a count of days, so subtracting two gives the days between them.",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM products WHERE name LIKE 'Pro%' OR name LIKE '%Kit' OR name NOT LIKE '%a_b%' OR name LIKE 'Lamp'",
        [
            "- Reads **products**.",
            "- Keeps only the rows where name starts with 'Pro' or name ends with 'Kit' or name does not match the pattern '%a_b%' (% is any text, _ any one character) or name is exactly 'Lamp'.",
            "- Shows name.",
            "- Note: SQLite's LIKE ignores upper/lower case for the letters A–Z.",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM products ORDER BY price DESC LIMIT 10 OFFSET 20",
        [
            "- Reads **products**.",
            "- Shows name.",
            "- Sorts by price (highest first).",
            "- Skips the first 20 rows and returns the next 10.",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM products LIMIT 3",
        [
            "- Reads **products**.",
            "- Shows name.",
            "- Returns 3 rows; with no sort order, which rows come back is arbitrary.",
        ],
    ),
    (
        "sqlite",
        "SELECT name, stock_quantity / 12 AS boxes, first_name || ' ' || last_name AS full FROM products",
        [
            "- Reads **products**.",
            "- Shows name, stock_quantity ÷ 12 (as boxes) and the text first_name followed by ' ' followed by last_name (as full).",
            "- Note: SQLite divides two whole numbers without the fraction (7 / 2 is 3). || joins pieces of text into one.",
        ],
    ),
    (
        "sqlite",
        "WITH previous_result(name, revenue) AS (SELECT name, revenue FROM products LIMIT 5) SELECT name FROM previous_result WHERE revenue > 100",
        [
            "- Reads **previous_result** (the rows of the previous answer).",
            "- Keeps only the rows where revenue is more than 100.",
            "- Shows name.",
        ],
    ),
    (
        "postgres",
        "SELECT EXTRACT(YEAR FROM order_date) AS y, count(*) FROM orders WHERE city ILIKE '%york%' AND order_date >= CURRENT_DATE - INTERVAL '30 days' GROUP BY 1 ORDER BY 1",
        [
            "- Reads **orders**.",
            "- Keeps only the rows where city contains 'york' (ignoring upper/lower case) and order_date is on or after today's date - 30 days.",
            "- Groups the rows by shown column 1 (one result row per group).",
            "- Shows for each group: the year of order_date (as y) and the number of rows.",
            "- Sorts by shown column 1 (lowest first).",
            "- Note: In PostgreSQL, LIKE tells upper from lower case; ILIKE ignores it.",
        ],
    ),
    (
        "sqlite",
        "SELECT a.x FROM a, b WHERE a.id = b.id AND (a.k = 1 OR b.k IN (2, 3)) AND NOT a.z BETWEEN 1 AND 5",
        [
            "- Reads **a**, together with **b** (every combination; the filter below links them).",
            "- Keeps only the rows where a.id is the same as b.id and (a.k is 1 or b.k is one of 2, 3) and a.z is not between 1 and 5 (both included).",
            "- Shows x.",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM t CROSS JOIN u RIGHT JOIN v ON v.id = t.id FULL JOIN w ON w.id = v.wid",
        [
            "- Reads **t**, with every combination of **u**, with all rows of **v** (same id as t), even those without a match, with **w** (where w.id is the same as v.wid), keeping unmatched rows from both sides.",
            "- Shows name.",
        ],
    ),
    (
        "sqlite",
        "SELECT s.total FROM (SELECT sum(x) AS total FROM t) AS s",
        [
            "- Reads the rows found by the nested step below (called s).",
            "  - Reads **t**.",
            "  - Shows the sum of x (as total).",
            "- Shows total.",
        ],
    ),
    (
        "sqlite",
        "SELECT weird_fn(a), coalesce(a, 0), upper(b), round(avg(c), 2), substr(d, 1, 4), CAST(a AS REAL) / b FROM t",
        [
            "- Reads **t**.",
            "- Shows `WEIRD_FN(a)`; a or else 0; b in capitals; the average of c rounded to 2 decimals; part of d from character 1, 4 characters long and a as real ÷ b.",
        ],
    ),
]


@pytest.mark.parametrize(("dialect", "sql", "expected"), CASES, ids=range(len(CASES)))
def test_query_shapes_read_as_written(dialect, sql, expected):
    assert explain(sql, dialect).splitlines() == expected
