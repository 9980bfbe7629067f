-- hr.sqlite: built by sample_dbs/build.py
CREATE TABLE locations (
    location_id INTEGER PRIMARY KEY,
    street_address TEXT NOT NULL,
    city TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country TEXT NOT NULL
);
CREATE TABLE departments (
    department_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    location_id INTEGER NOT NULL,
    FOREIGN KEY (location_id) REFERENCES locations (location_id)
);
CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    job_title TEXT NOT NULL UNIQUE,
    min_salary INTEGER NOT NULL,
    max_salary INTEGER NOT NULL
);
CREATE TABLE employees (
    employee_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone_number TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    salary INTEGER NOT NULL,  -- current yearly salary
    commission_pct REAL,  -- sales staff only; NULL for everyone else
    manager_id INTEGER,  -- NULL for the chief executive
    department_id INTEGER NOT NULL,
    FOREIGN KEY (job_id) REFERENCES jobs (job_id),
    FOREIGN KEY (manager_id) REFERENCES employees (employee_id),
    FOREIGN KEY (department_id) REFERENCES departments (department_id)
);
CREATE TABLE salary_history (
    salary_history_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL,
    salary INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,  -- NULL for the current salary
    FOREIGN KEY (employee_id) REFERENCES employees (employee_id)
);
