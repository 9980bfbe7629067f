-- music.sqlite: built by sample_dbs/build.py
CREATE TABLE genres (
    genre_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE artists (
    artist_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artist_type TEXT NOT NULL,  -- 'band' or 'solo'
    country TEXT NOT NULL,
    formed_year INTEGER NOT NULL,
    genre_id INTEGER NOT NULL,
    FOREIGN KEY (genre_id) REFERENCES genres (genre_id)
);
CREATE TABLE albums (
    album_id INTEGER PRIMARY KEY,
    artist_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    release_date TEXT NOT NULL,
    genre_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    FOREIGN KEY (artist_id) REFERENCES artists (artist_id),
    FOREIGN KEY (genre_id) REFERENCES genres (genre_id)
);
CREATE TABLE tracks (
    track_id INTEGER PRIMARY KEY,
    album_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    track_number INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL,
    is_explicit INTEGER NOT NULL,  -- 1 if the track carries an explicit-content label
    FOREIGN KEY (album_id) REFERENCES albums (album_id)
);
CREATE TABLE venues (
    venue_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    capacity INTEGER NOT NULL
);
CREATE TABLE concerts (
    concert_id INTEGER PRIMARY KEY,
    venue_id INTEGER NOT NULL,
    concert_date TEXT NOT NULL,
    ticket_price REAL NOT NULL,
    attendance INTEGER NOT NULL,
    FOREIGN KEY (venue_id) REFERENCES venues (venue_id)
);
CREATE TABLE concert_performers (
    concert_id INTEGER NOT NULL,
    artist_id INTEGER NOT NULL,
    is_headliner INTEGER NOT NULL,  -- 1 for the headline act, 0 for support acts
    PRIMARY KEY (concert_id, artist_id),
    FOREIGN KEY (concert_id) REFERENCES concerts (concert_id),
    FOREIGN KEY (artist_id) REFERENCES artists (artist_id)
);
