#!/usr/bin/env python3
"""Writes sample FITS collections with astropy, for the demo and the tests.

Each collection imitates what an archive holds: images with an equatorial WCS, event lists,
spectra and cubes, with the headers missions write (TELESCOP, INSTRUME, OBJECT, RA/DEC, DATE-OBS,
EXPTIME, BUNIT, NAXISn). The pixel values are random; the headers are what the catalog reads.

    make-sample-fits.py OUT            # the demo collections under OUT/<collection>/
    make-sample-fits.py OUT --broken   # also files a scan must survive (see below)
    make-sample-fits.py OUT --image-size 512   # bigger images and cubes, for benchmarks;
                                               # only pixel counts change (and NAXISn, CRPIXn)
"""

import argparse
import json
import os
import pathlib

import numpy as np
from astropy.io import fits
from astropy.time import Time

TARGETS = [
    ("Crab Nebula", 83.6331, 22.0145),
    ("M87", 187.7059, 12.3911),
    ("Cas A", 350.8500, 58.8150),
    ("Sgr A*", 266.4168, -29.0078),
    ("Vela Pulsar", 128.8361, -45.1764),
    ("SN 1987A", 83.8667, -69.2697),
    ("3C 273", 187.2779, 2.0524),
    ("Polaris", 37.9546, 89.2641),
    ("Alpha Centauri", 219.9021, -60.8340),
    ("Andromeda Galaxy", 10.6847, 41.2690),
]

# (collection, telescope, instrument, kind, band keywords, exposure range, date range)
COLLECTIONS = {
    "xmm-epic": ("XMM", "EPN", "image", {}, (5e3, 6e4), ("2003-01-01", "2023-12-31")),
    "xmm-events": ("XMM", "EMOS1", "event", {}, (1e4, 8e4), ("2005-01-01", "2022-12-31")),
    "herschel-pacs": ("Herschel", "PACS", "image", {}, (300, 3600), ("2009-07-01", "2013-04-29")),
    "caha-spectra": ("CAHA 3.5m", "PMAS", "spectrum", {"WAVELMIN": 370.0, "WAVELMAX": 750.0},
                     (600, 3600), ("2015-01-01", "2024-06-30")),
    "alma-cubes": ("ALMA", "BAND6", "cube", {}, (1800, 7200), ("2014-01-01", "2024-12-31")),
}


def header_for(rng, telescope, instrument, target, i, exposure, dates, extra):
    name, ra, dec = target
    # Scatter around the target, as several pointings would.
    ra = (ra + rng.normal(0, 0.05) / max(np.cos(np.radians(dec)), 0.05)) % 360.0
    dec = float(np.clip(dec + rng.normal(0, 0.05), -90, 90))
    start, end = Time(dates[0]).mjd, Time(dates[1]).mjd
    t = Time(rng.uniform(start, end), format="mjd")
    h = fits.Header()
    h["TELESCOP"] = telescope
    h["INSTRUME"] = instrument
    h["OBJECT"] = name
    h["OBS_ID"] = f"{telescope[:3].upper()}{i:06d}"
    h["RA_OBJ"] = (round(ra, 6), "[deg] target right ascension")
    h["DEC_OBJ"] = (round(dec, 6), "[deg] target declination")
    h["DATE-OBS"] = t.isot[:19]
    h["EXPTIME"] = (round(float(rng.uniform(*exposure)), 1), "[s] exposure time")
    h["ORIGIN"] = "Orrery sample data (made by astropy)"
    for k, v in extra.items():
        h[k] = v
    return h, ra, dec


def wcs(h, ra, dec, n, scale_deg):
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CRPIX1"], h["CRPIX2"] = n / 2 + 0.5, n / 2 + 0.5
    h["CDELT1"], h["CDELT2"] = -scale_deg, scale_deg
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["RADESYS"] = "ICRS"


def write_product(path, kind, rng, h, ra, dec, image_size=64):
    if kind == "image":
        n = image_size
        data = rng.poisson(3.0, size=(n, n)).astype(np.float32)
        wcs(h, ra, dec, n, 4.0 / 3600)
        h["BUNIT"] = "count"
        fits.PrimaryHDU(data=data, header=h).writeto(path, overwrite=True)
    elif kind == "cube":
        n, m = image_size // 2, 16
        data = rng.normal(0, 1e-3, size=(m, n, n)).astype(np.float32)
        wcs(h, ra, dec, n, 0.5 / 3600)
        h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CUNIT3"] = "FREQ", 2.3e11, 1e6, "Hz"
        h["BUNIT"] = "Jy/beam"
        fits.PrimaryHDU(data=data, header=h).writeto(path, overwrite=True)
    elif kind == "spectrum":
        n = 512
        data = (1.0 + rng.normal(0, 0.02, size=n)).astype(np.float32)
        h["CTYPE1"], h["CRVAL1"], h["CDELT1"], h["CUNIT1"] = "WAVE", 370.0, 0.75, "nm"
        h["BUNIT"] = "erg/cm2/s/Angstrom"
        h["RA"], h["DEC"] = h["RA_OBJ"], h["DEC_OBJ"]
        fits.PrimaryHDU(data=data, header=h).writeto(path, overwrite=True)
    elif kind == "event":
        n = 200
        cols = fits.ColDefs([
            fits.Column(name="TIME", format="D", unit="s", array=np.sort(rng.uniform(0, 1e4, n))),
            fits.Column(name="X", format="E", array=rng.normal(0, 50, n)),
            fits.Column(name="Y", format="E", array=rng.normal(0, 50, n)),
            fits.Column(name="PI", format="J", array=rng.integers(20, 2000, n)),
        ])
        events = fits.BinTableHDU.from_columns(cols, name="EVENTS")
        primary = fits.PrimaryHDU(header=h)
        fits.HDUList([primary, events]).writeto(path, overwrite=True)


def make(out, collections, per_target, seed, image_size=64):
    rng = np.random.default_rng(seed)
    for cid in collections:
        telescope, instrument, kind, extra, exposure, dates = COLLECTIONS[cid]
        d = out / cid
        d.mkdir(parents=True, exist_ok=True)
        i = 0
        for target in TARGETS:
            for _ in range(per_target):
                i += 1
                h, ra, dec = header_for(rng, telescope, instrument, target, i, exposure, dates, extra)
                slug = target[0].lower().replace(" ", "-").replace("*", "star")
                write_product(d / f"{cid}-{slug}-{i:04d}.fits", kind, rng, h, ra, dec, image_size)


def broken(out, seed):
    """Files a scan must survive, next to good ones, in OUT/mixed/."""
    rng = np.random.default_rng(seed)
    d = out / "mixed"
    (d / "sub").mkdir(parents=True, exist_ok=True)
    h, ra, dec = header_for(rng, "XMM", "EPN", TARGETS[0], 1, (1e4, 2e4), ("2010-01-01", "2010-12-31"), {})
    write_product(d / "good.fits", "image", rng, h, ra, dec)
    h, ra, dec = header_for(rng, "XMM", "EPN", TARGETS[3], 2, (1e4, 2e4), ("2011-01-01", "2011-12-31"), {})
    write_product(d / "sub" / "good-deep.fits", "image", rng, h, ra, dec)
    # The same bytes twice.
    (d / "sub" / "copy-of-good.fits").write_bytes((d / "good.fits").read_bytes())
    # Cut short inside its data unit.
    whole = (d / "good.fits").read_bytes()
    (d / "truncated.fits").write_bytes(whole[: 2880 + 1000])
    # A FITS start, then garbage where the header should go on.
    (d / "garbage.fits").write_bytes(b"SIMPLE  =                    T" + bytes(rng.integers(0, 256, 5000, dtype=np.uint8)))
    # Not FITS and no sidecar.
    (d / "notes.txt").write_text("observing notes\n")
    # Not FITS, with a sidecar.
    (d / "lightcurve.csv").write_text("time,flux\n0,1.0\n1,1.1\n")
    (d / "lightcurve.csv.meta.json").write_text(json.dumps({
        "title": "Crab light curve", "mission": "XMM-Newton", "instrument": "OM",
        "product_type": "timeseries", "target": "Crab Nebula", "ra": 83.6331, "dec": 22.0145,
        "date_obs": "2012-03-04T05:06:07", "exptime": 3600, "format": "text/csv",
        "tags": ["lightcurve", "snr"],
    }))
    # A sidecar that is not valid.
    (d / "broken.csv").write_text("a,b\n")
    (d / "broken.csv.meta.toml").write_text("title = [unclosed\n")
    # A link that leads out of the collection, and one that leads nowhere.
    outside = out / "outside.fits"
    outside.write_bytes(whole)
    for name, target in [("escape.fits", outside), ("dangling.fits", out / "missing.fits")]:
        link = d / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)
    # A pipe: not a regular file; opening it would block.
    fifo = d / "pipe.fits"
    if not fifo.exists():
        os.mkfifo(fifo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--collections", default=",".join(COLLECTIONS), help="comma-separated ids")
    ap.add_argument("--per-target", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1987)
    ap.add_argument("--broken", action="store_true", help="also write OUT/mixed/ with bad files")
    ap.add_argument("--image-size", type=int, default=64,
                    help="pixels per side of images (default 64; cubes get half as many per side "
                         "and 16 planes); only pixel counts change, with NAXISn and CRPIXn")
    args = ap.parse_args()
    if args.image_size < 2:
        ap.error("--image-size must be at least 2")
    args.out.mkdir(parents=True, exist_ok=True)
    make(args.out, [c for c in args.collections.split(",") if c], args.per_target, args.seed,
         args.image_size)
    if args.broken:
        broken(args.out, args.seed)


if __name__ == "__main__":
    main()
