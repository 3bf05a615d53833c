-- The catalog: collections of data products this node holds, their text index, and a sky index.
--
-- Facet columns use NOCASE so filters match whatever case a header used. Positions are kept as
-- unit vectors (cx, cy, cz) as well as (ra, dec): a cone is one dot product, and the R*Tree over
-- the vectors narrows it to a box first, with no special case at RA = 0/360 or the poles.

CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    mission     TEXT,
    licence     TEXT,
    publisher   TEXT,
    band        TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',   -- JSON list
    root        TEXT NOT NULL,                -- the directory it was scanned from
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    collection   TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path         TEXT NOT NULL,               -- relative to the collection's root, '/'-separated
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    blake3       BLOB NOT NULL CHECK (length(blake3) = 32),
    format       TEXT NOT NULL,               -- MIME type
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    obs_id       TEXT NOT NULL,
    mission      TEXT COLLATE NOCASE,
    facility     TEXT COLLATE NOCASE,
    instrument   TEXT COLLATE NOCASE,
    product_type TEXT COLLATE NOCASE,
    calib_level  INTEGER,
    band         TEXT COLLATE NOCASE,
    licence      TEXT COLLATE NOCASE,
    publisher    TEXT COLLATE NOCASE,
    target       TEXT,
    ra           REAL,
    dec          REAL,
    cx           REAL,
    cy           REAL,
    cz           REAL,
    fov          REAL,
    t_min        REAL,
    t_max        REAL,
    exptime      REAL,
    em_min       REAL,
    em_max       REAL,
    naxis1       INTEGER,
    naxis2       INTEGER,
    naxis3       INTEGER,
    bunit        TEXT,
    UNIQUE (collection, path)
);
CREATE INDEX products_mission ON products (mission);
CREATE INDEX products_instrument ON products (instrument);
CREATE INDEX products_type ON products (product_type);
CREATE INDEX products_time ON products (t_min);
CREATE INDEX products_blake3 ON products (blake3);

CREATE TABLE product_tags (
    tag     TEXT NOT NULL COLLATE NOCASE,
    product INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    PRIMARY KEY (tag, product)
) WITHOUT ROWID;
CREATE INDEX product_tags_product ON product_tags (product);

-- Full text over titles, descriptions, targets and header values, and one token per facet
-- value so a text query narrows by facet inside the index. Contentless: the text lives only as
-- an index (rowid = products.id).
CREATE VIRTUAL TABLE product_text USING fts5(
    title, description, target, header,
    facets,                                   -- one token per facet value, see search.rs
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Settings the catalog's views read, such as the address its products are served from.
CREATE TABLE catalog_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE VIRTUAL TABLE sky_index USING rtree(id, x0, x1, y0, y1, z0, z1);

-- ivoa.obscore as TAP serves it (ObsCore 1.1), plus the row id and the unit vector.
CREATE VIEW obscore AS SELECT
    product_type                                   AS dataproduct_type,
    calib_level                                    AS calib_level,
    coalesce(mission, collection)                  AS obs_collection,
    obs_id                                         AS obs_id,
    title                                          AS obs_title,
    'ivo://orrery/' || collection || '?' || path   AS obs_publisher_did,
    publisher                                      AS obs_publisher,
    coalesce((SELECT value FROM catalog_settings WHERE key = 'public_url'), '')
        || '/data/' || collection || '/' || path   AS access_url,
    format                                         AS access_format,
    (size + 1023) / 1024                           AS access_estsize,
    target                                         AS target_name,
    ra                                             AS s_ra,
    dec                                            AS s_dec,
    fov                                            AS s_fov,
    CASE WHEN ra IS NOT NULL AND fov IS NOT NULL
         THEN 'CIRCLE ICRS ' || ra || ' ' || dec || ' ' || (fov / 2) END AS s_region,
    NULL                                           AS s_resolution,
    naxis1                                         AS s_xel1,
    naxis2                                         AS s_xel2,
    t_min                                          AS t_min,
    t_max                                          AS t_max,
    exptime                                        AS t_exptime,
    NULL                                           AS t_resolution,
    NULL                                           AS t_xel,
    em_min                                         AS em_min,
    em_max                                         AS em_max,
    NULL                                           AS em_res_power,
    CASE WHEN product_type = 'cube' THEN naxis3 END AS em_xel,
    NULL                                           AS o_ucd,
    NULL                                           AS pol_states,
    NULL                                           AS pol_xel,
    facility                                       AS facility_name,
    instrument                                     AS instrument_name,
    id                                             AS _id,
    cx                                             AS _cx,
    cy                                             AS _cy,
    cz                                             AS _cz
FROM products;
