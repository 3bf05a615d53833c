#!/usr/bin/env python3
"""Regenerate the bundled sample notebooks in node/samples/.

Usage: make-sample-notebooks.py [OUTDIR]

Writes two notebooks that the node's notebook importer is tested against:

  gaia-variable-stars.ipynb  nbformat 4.5: cell ids, source stored as single
                             strings, every v4 output type (stream,
                             execute_result, display_data with a PNG, error).
  xmm-spectrum.ipynb         nbformat 4.4: no cell ids, source and text
                             stored as lists of lines, an HTML table output
                             and a stderr stream.

Output is deterministic: cell ids are fixed and the figure is drawn from a
seeded synthetic light curve, so re-running produces identical files.
Requires only nbformat (see requirements.txt).
"""

import base64
import os
import random
import struct
import sys
import warnings
import zlib

import nbformat
from nbformat.v4 import (
    new_code_cell,
    new_markdown_cell,
    new_notebook,
    new_output,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTDIR = os.path.join(HERE, "..", "node", "samples")

# ---------------------------------------------------------------------------
# A tiny, valid PNG: phase-folded RR Lyrae light curve, drawn pixel by pixel.
# ---------------------------------------------------------------------------


def png_bytes(width, height, pixels):
    """Encode rows of (r, g, b) tuples as an 8-bit RGB PNG."""

    def chunk(kind, data):
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    raw = b"".join(
        b"\x00" + bytes(c for px in row for c in px) for row in pixels
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def light_curve_png():
    """Phase-folded sawtooth light curve (two cycles), magnitude axis inverted."""
    width, height = 80, 50
    white, black, blue = (255, 255, 255), (0, 0, 0), (31, 119, 180)
    pixels = [[white] * width for _ in range(height)]

    left, right, top, bottom = 8, width - 3, 3, height - 7
    for x in range(left, right + 1):
        pixels[top][x] = pixels[bottom][x] = black
    for y in range(top, bottom + 1):
        pixels[y][left] = pixels[y][right] = black
    for tick in (0.0, 0.5, 1.0, 1.5, 2.0):
        x = left + round(tick / 2.0 * (right - left))
        pixels[bottom + 1][x] = pixels[bottom + 2][x] = black

    rng = random.Random(4111834567779557376)
    mag_lo, mag_hi = 15.55, 16.45  # bright at the top
    for _ in range(44):
        phase = rng.random()
        if phase < 0.12:
            mag = 15.62 + 0.75 * (1 - phase / 0.12)
        else:
            mag = 15.62 + 0.75 * (phase - 0.12) / 0.88
        mag += rng.gauss(0.0, 0.012)
        y = top + 2 + round((mag - mag_lo) / (mag_hi - mag_lo) * (bottom - top - 4))
        for cycle in (0, 1):
            x = left + 2 + round((phase + cycle) / 2.0 * (right - left - 4))
            for dx in (0, 1):
                for dy in (0, 1):
                    if left < x + dx < right and top < y + dy < bottom:
                        pixels[y + dy][x + dx] = blue
    return png_bytes(width, height, pixels)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

ANSI_RED = "\x1b[0;31m"
ANSI_GREEN = "\x1b[0;32m"
ANSI_BGREEN = "\x1b[1;32m"
ANSI_CYAN = "\x1b[0;36m"
ANSI_BLUE = "\x1b[0;34m"
ANSI_OFF = "\x1b[0m"
OP = "\x1b[38;5;241m"
OP_OFF = "\x1b[39m"


def code(source, count, outputs=(), cell_id=None, **metadata):
    cell = new_code_cell(source=source, execution_count=count, outputs=list(outputs))
    cell.metadata.update(metadata)
    if cell_id is None:
        del cell["id"]
    else:
        cell.id = cell_id
    return cell


def markdown(source, cell_id=None):
    cell = new_markdown_cell(source=source)
    if cell_id is None:
        del cell["id"]
    else:
        cell.id = cell_id
    return cell


def check_strict(nb, name):
    """nbformat.validate, with silent id repairs treated as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbformat.validate(nb)
    if nb.nbformat_minor >= 5:
        ids = [c.id for c in nb.cells]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: duplicate cell ids")


def write(nb, outdir, name, split_lines):
    check_strict(nb, name)
    path = os.path.join(outdir, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        nbformat.write(nb, f, split_lines=split_lines)
    # Round-trip: the file on disk must read back and validate as written.
    with open(path, encoding="utf-8") as f:
        check_strict(nbformat.read(f, as_version=nbformat.NO_CONVERT), name)
    print(f"wrote {os.path.relpath(path)}")


# ---------------------------------------------------------------------------
# gaia-variable-stars.ipynb (nbformat 4.5)
# ---------------------------------------------------------------------------


def gaia_notebook():
    source_id = 4111834567779557376
    nb = new_notebook()
    nb.nbformat_minor = 5
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "name": "python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": "3.11.7",
        },
    }

    cells = []
    cells.append(markdown(
        "# Period search for a Gaia DR3 RR Lyrae candidate\n"
        "\n"
        f"This notebook explores the $G$-band epoch photometry of **Gaia DR3 {source_id}**, "
        "classified as an RRab pulsator in `gaiadr3.vari_classifier_result`. "
        "We read the light curve retrieved from the archive's DataLink service, "
        "estimate the pulsation period with a Lomb–Scargle periodogram and compare it "
        "with the period published in `gaiadr3.vari_rrlyrae`.\n"
        "\n"
        "Transit times are barycentric, in TCB, given as $\\mathrm{BJD} - 2455197.5$ "
        "(days since 2010-01-01T00:00).",
        cell_id="a3f1c2d4-title",
    ))
    cells.append(code(
        "import numpy as np\n"
        "import astropy.units as u\n"
        "from astropy.io import fits\n"
        "from astropy.timeseries import LombScargle\n"
        "import matplotlib.pyplot as plt\n"
        "\n"
        "%matplotlib inline",
        1,
        cell_id="b7e20c91-imports",
        tags=["setup"],
    ))
    cells.append(markdown(
        "## Epoch photometry\n"
        "\n"
        "Transits flagged by the photometric or the variability pipeline are dropped. "
        "Magnitude errors are propagated from the flux errors,\n"
        "$$\\sigma_G \\simeq \\frac{2.5}{\\ln 10}\\,\\frac{\\sigma_F}{F}.$$",
        cell_id="c0d93e5a-photometry",
    ))
    cells.append(code(
        f"source_id = {source_id}\n"
        'path = f"data/EPOCH_PHOTOMETRY-Gaia DR3 {source_id}.fits"\n'
        "\n"
        "with fits.open(path) as hdul:\n"
        "    lc = hdul[1].data\n"
        "\n"
        'good = ~lc["rejected_by_photometry"] & ~lc["rejected_by_variability"]\n'
        't = lc["g_transit_time"][good] * u.day  # BJD(TCB) - 2455197.5\n'
        'mag = lc["g_transit_mag"][good]\n'
        'flux, flux_err = lc["g_transit_flux"][good], lc["g_transit_flux_error"][good]\n'
        "mag_err = 2.5 / np.log(10) * flux_err / flux\n"
        "\n"
        'print(f"{good.sum()} of {len(lc)} G-band transits kept")\n'
        'print(f"time span: {np.ptp(t):.1f}")',
        2,
        [new_output(
            "stream",
            name="stdout",
            text="44 of 47 G-band transits kept\ntime span: 1018.3 d\n",
        )],
        cell_id="d41b7f08-load",
    ))
    cells.append(code(
        "mag.mean(), mag.std()",
        3,
        [new_output(
            "execute_result",
            data={"text/plain": "(np.float64(16.003781116939024), np.float64(0.2157636081733512))"},
            execution_count=3,
        )],
        cell_id="e5a6c3b2-summary",
    ))
    cells.append(markdown(
        "## Lomb–Scargle periodogram\n"
        "\n"
        "For angular frequency $\\omega = 2\\pi f$ the normalised periodogram is\n"
        "$$\n"
        "P_\\mathrm{LS}(f) = \\frac{1}{2\\sigma^2}\\left[\n"
        "\\frac{\\left(\\sum_n y_n \\cos\\omega(t_n-\\tau)\\right)^2}{\\sum_n \\cos^2\\omega(t_n-\\tau)}\n"
        "+ \\frac{\\left(\\sum_n y_n \\sin\\omega(t_n-\\tau)\\right)^2}{\\sum_n \\sin^2\\omega(t_n-\\tau)}\n"
        "\\right],\n"
        "\\qquad \\tan 2\\omega\\tau = \\frac{\\sum_n \\sin 2\\omega t_n}{\\sum_n \\cos 2\\omega t_n}.\n"
        "$$\n"
        "RR Lyrae periods lie between roughly $0.2$ and $1\\,\\mathrm{d}$, so we search "
        "$0.1 \\le f \\le 5\\,\\mathrm{d}^{-1}$.",
        cell_id="f2c8d610-lombscargle",
    ))
    cells.append(code(
        "ls = LombScargle(t, mag, mag_err)\n"
        "frequency, power = ls.autopower(minimum_frequency=0.1 / u.day,\n"
        "                                maximum_frequency=5 / u.day,\n"
        "                                samples_per_peak=50)\n"
        "best_period = 1 / frequency[np.argmax(power)]\n"
        "best_period",
        4,
        [new_output(
            "execute_result",
            data={
                "text/latex": "$0.56730318 \\; \\mathrm{d}$",
                "text/plain": "<Quantity 0.56730318 d>",
            },
            execution_count=4,
        )],
        cell_id="0a9e4b37-period",
    ))
    png = base64.b64encode(light_curve_png()).decode("ascii")
    cells.append(code(
        "phase = (t / best_period).decompose().value % 1\n"
        "\n"
        "fig, ax = plt.subplots(figsize=(6.4, 4.0))\n"
        "ax.errorbar(np.r_[phase, phase + 1], np.r_[mag, mag],\n"
        '            yerr=np.r_[mag_err, mag_err], fmt=".", ms=4)\n'
        "ax.invert_yaxis()\n"
        'ax.set_xlabel("phase")\n'
        'ax.set_ylabel("$G$ [mag]")\n'
        'ax.set_title(f"Gaia DR3 {source_id}, P = {best_period:.5f}")\n'
        "plt.show()",
        5,
        [new_output(
            "display_data",
            data={
                "image/png": png,
                "text/plain": "<Figure size 640x400 with 1 Axes>",
            },
        )],
        cell_id="1b6f5c48-fold",
    ))
    cells.append(markdown(
        "## Comparison with the DR3 catalogue\n"
        "\n"
        "`gaiadr3.vari_rrlyrae` lists $P_f = 0.5673\\,\\mathrm{d}$ for this source.",
        cell_id="2c7a6d59-compare",
    ))
    traceback = [
        f"{ANSI_RED}---------------------------------------------------------------------------{ANSI_OFF}",
        f"{ANSI_RED}UnitConversionError{ANSI_OFF}                       Traceback (most recent call last)",
        f"Cell {ANSI_GREEN}In[6], line 2{ANSI_OFF}\n"
        f"{ANSI_BGREEN}      1{ANSI_OFF} catalog_period {OP}={OP_OFF} {OP}0.5673{OP_OFF}  \x1b[38;5;66;03m# d, gaiadr3.vari_rrlyrae.pf\x1b[39;00m\n"
        f"{ANSI_GREEN}----> 2{ANSI_OFF} (best_period {OP}-{OP_OFF} catalog_period) {OP}/{OP_OFF} catalog_period\n",
        f"File {ANSI_GREEN}~/orrery/.venv/lib/python3.11/site-packages/astropy/units/quantity.py:701{ANSI_OFF}, "
        f"in {ANSI_CYAN}Quantity.__array_ufunc__{ANSI_BLUE}(self, function, method, *inputs, **kwargs){ANSI_OFF}\n"
        f"{ANSI_BGREEN}    699{ANSI_OFF}     \x1b[38;5;28;01mreturn\x1b[39;00m \x1b[38;5;28mNotImplemented\x1b[39m\n"
        f"{ANSI_BGREEN}    700{ANSI_OFF} \x1b[38;5;28;01melse\x1b[39;00m:\n"
        f"{ANSI_GREEN}--> 701{ANSI_OFF}     \x1b[38;5;28;01mraise\x1b[39;00m e\n",
        f"File {ANSI_GREEN}~/orrery/.venv/lib/python3.11/site-packages/astropy/units/quantity.py:646{ANSI_OFF}, "
        f"in {ANSI_CYAN}Quantity.__array_ufunc__{ANSI_BLUE}(self, function, method, *inputs, **kwargs){ANSI_OFF}\n"
        f"{ANSI_GREEN}--> 646{ANSI_OFF} converters, unit {OP}={OP_OFF} converters_and_unit(function, method, {OP}*{OP_OFF}inputs)\n",
        f"File {ANSI_GREEN}~/orrery/.venv/lib/python3.11/site-packages/astropy/units/quantity_helper/converters.py:195{ANSI_OFF}, "
        f"in {ANSI_CYAN}converters_and_unit{ANSI_BLUE}(function, method, *args){ANSI_OFF}\n"
        f"{ANSI_GREEN}--> 195{ANSI_OFF}     \x1b[38;5;28;01mraise\x1b[39;00m UnitConversionError(\n",
        f"{ANSI_RED}UnitConversionError{ANSI_OFF}: Can only apply 'subtract' function to dimensionless "
        "quantities when other argument is not a quantity (unless the latter is all zero/infinity/nan).",
    ]
    cells.append(code(
        "catalog_period = 0.5673  # d, gaiadr3.vari_rrlyrae.pf\n"
        "(best_period - catalog_period) / catalog_period",
        6,
        [new_output(
            "error",
            ename="UnitConversionError",
            evalue="Can only apply 'subtract' function to dimensionless quantities when "
            "other argument is not a quantity (unless the latter is all zero/infinity/nan).",
            traceback=traceback,
        )],
        cell_id="3d8b7e6a-mismatch",
    ))
    cells.append(code(
        "catalog_period = 0.5673 * u.day\n"
        "(best_period - catalog_period) / catalog_period",
        7,
        [new_output(
            "execute_result",
            data={
                "text/latex": "$5.6034003 \\times 10^{-6} \\; \\mathrm{}$",
                "text/plain": "<Quantity 5.60340029e-06>",
            },
            execution_count=7,
        )],
        cell_id="4e9c8f7b-relative",
    ))
    cells.append(markdown(
        "The periodogram peak at $P = 0.56730\\,\\mathrm{d}$ agrees with the catalogue to "
        "$\\Delta P / P \\approx 6 \\times 10^{-6}$. The folded light curve shows the steep "
        "rise and slow decline typical of RRab stars, with a peak-to-peak amplitude "
        "$A_G \\approx 0.75\\,\\mathrm{mag}$.\n"
        "\n"
        "**Next:** repeat for the other RRab candidates in the same field and look for "
        "Blazhko modulation in the residuals.",
        cell_id="5fad9a8c-summary",
    ))
    nb.cells = cells
    return nb


# ---------------------------------------------------------------------------
# xmm-spectrum.ipynb (nbformat 4.4, no cell ids)
# ---------------------------------------------------------------------------


def xmm_notebook():
    nb = new_notebook()
    nb.nbformat_minor = 4
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        },
        "language_info": {
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "name": "python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": "3.8.10",
        },
    }
    html_table = (
        "<div><i>Table length=4</i>\n"
        '<table id="table140233" class="table-striped table-bordered table-condensed">\n'
        "<thead><tr><th>band</th><th>e_lo</th><th>e_hi</th><th>counts</th><th>rate</th></tr></thead>\n"
        "<thead><tr><th></th><th>keV</th><th>keV</th><th></th><th>1 / s</th></tr></thead>\n"
        "<thead><tr><th>str4</th><th>float64</th><th>float64</th><th>int64</th><th>float64</th></tr></thead>\n"
        "<tr><td>soft</td><td>0.3</td><td>2.0</td><td>18842</td><td>0.6280</td></tr>\n"
        "<tr><td>hard</td><td>2.0</td><td>10.0</td><td>4117</td><td>0.1372</td></tr>\n"
        "<tr><td>Fe K</td><td>6.2</td><td>6.7</td><td>301</td><td>0.0100</td></tr>\n"
        "<tr><td>full</td><td>0.3</td><td>10.0</td><td>22959</td><td>0.7653</td></tr>\n"
        "</table></div>"
    )
    plain_table = (
        "<Table length=4>\n"
        "band   e_lo    e_hi  counts   rate \n"
        "       keV     keV           1 / s \n"
        "str4 float64 float64 int64  float64\n"
        "---- ------- ------- ------ -------\n"
        "soft     0.3     2.0  18842  0.6280\n"
        "hard     2.0    10.0   4117  0.1372\n"
        "Fe K     6.2     6.7    301  0.0100\n"
        "full     0.3    10.0  22959  0.7653"
    )
    nb.cells = [
        markdown(
            "# XMM-Newton EPIC-pn spectrum of NGC 4151\n"
            "\n"
            "Quick look at the source spectrum extracted from observation `0112310101` "
            "(0.3–10 keV). Count rates per band, with $E$ in keV and "
            "$\\mathrm{HR} = (H - S)/(H + S)$."
        ),
        code(
            "import numpy as np\n"
            "import astropy.units as u\n"
            "from astropy.io import fits\n"
            "from astropy.table import Table\n"
            "\n"
            'spec = fits.open("data/0112310101_pn_src_spectrum.fits")\n'
            'hdr = spec["SPECTRUM"].header\n'
            'print(hdr["TELESCOP"], hdr["INSTRUME"], hdr["FILTER"])\n'
            'print("exposure:", hdr["EXPOSURE"], "s")',
            1,
            [
                new_output(
                    "stream",
                    name="stderr",
                    text="WARNING: UnitsWarning: 'counts' did not parse as fits unit: At col 0, "
                    "Unit 'counts' not supported by the FITS standard. Did you mean count? "
                    "If this is meant to be a custom unit, define it with 'u.def_unit'. "
                    "To have it recognized inside a file reader or other code, enable it "
                    "with 'u.add_enabled_units'. For details, see "
                    "https://docs.astropy.org/en/latest/units/combining_and_defining.html "
                    "[astropy.units.core]\n",
                ),
                new_output(
                    "stream",
                    name="stdout",
                    text="XMM EPN Medium\nexposure: 30001.2 s\n",
                ),
            ],
        ),
        code(
            'chan = spec["SPECTRUM"].data\n'
            'ebounds = spec["EBOUNDS"].data\n'
            'energy = 0.5 * (ebounds["E_MIN"] + ebounds["E_MAX"]) * u.keV\n'
            'exposure = hdr["EXPOSURE"] * u.s\n'
            "\n"
            "bands = [(\"soft\", 0.3, 2.0), (\"hard\", 2.0, 10.0), (\"Fe K\", 6.2, 6.7), (\"full\", 0.3, 10.0)]\n"
            "rows = []\n"
            "for name, lo, hi in bands:\n"
            "    sel = (energy >= lo * u.keV) & (energy < hi * u.keV)\n"
            '    counts = chan["COUNTS"][sel].sum()\n'
            "    rows.append((name, lo, hi, counts, (counts / exposure).to_value(1 / u.s)))\n"
            'rates = Table(rows=rows, names=["band", "e_lo", "e_hi", "counts", "rate"])\n'
            'rates["e_lo"].unit = rates["e_hi"].unit = u.keV\n'
            'rates["rate"].unit = 1 / u.s\n'
            'rates["rate"].format = ".4f"\n'
            "rates",
            2,
            [new_output(
                "execute_result",
                data={"text/html": html_table, "text/plain": plain_table},
                execution_count=2,
            )],
            scrolled=True,
        ),
        code(
            'soft, hard = rates["counts"][0], rates["counts"][1]\n'
            "hr = (hard - soft) / (hard + soft)\n"
            "round(hr, 3)",
            3,
            [new_output(
                "execute_result",
                data={"text/plain": "-0.641"},
                execution_count=3,
            )],
        ),
        markdown(
            "A hardness ratio of $\\mathrm{HR} \\approx -0.64$ and a clear Fe K$\\alpha$ "
            "excess near $6.4\\,\\mathrm{keV}$; next step is a proper fit with an absorbed "
            "power law plus Gaussian line."
        ),
    ]
    return nb


def main(argv):
    outdir = argv[0] if argv else DEFAULT_OUTDIR
    os.makedirs(outdir, exist_ok=True)
    write(gaia_notebook(), outdir, "gaia-variable-stars.ipynb", split_lines=False)
    write(xmm_notebook(), outdir, "xmm-spectrum.ipynb", split_lines=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
