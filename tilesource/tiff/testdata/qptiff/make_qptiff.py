#!/usr/bin/python3
"""Write fluorescence.qptiff, a small multiplexed-fluorescence QPTIFF.

It follows the layout of PerkinElmer/Akoya QPTIFF files (Vectra Polaris,
PhenoCycler/PhenoImager; see Bio-Formats' VectraReader and tifffile's
TiffPage.is_qpi): Software "PerkinElmer-QPI", every page described by a
<PerkinElmer-QPI-ImageDescription> XML document whose ImageType says what it
is. The pages, in file order:

  0-2   FullResolution, one tiled greyscale page per channel (DAPI, CD8, PanCK)
  3     Thumbnail, an RGB strip image
  4-6   ReducedResolution, the channels at 1/2
  7-9   ReducedResolution, the channels at 1/4
  10    Overview (the slide's macro image), RGB strips
  11    Label, RGB strips

The pixel size is 0.4965 um (ResolutionUnit centimetre; 0.01 / mm is
20.1395...), the objective 20x.

Run with Debian's python3-tifffile: /usr/bin/python3 make_qptiff.py
"""

import numpy as np
import tifffile

CHANNELS = [("DAPI", "0,0,255"), ("CD8", "0,255,0"), ("PanCK", "255,0,0")]
W, H, TILE = 512, 384, 128
MPP = 0.4965


def description(image_type, name=None, color=None):
    parts = [
        '<?xml version="1.0" encoding="utf-16"?>',
        "<PerkinElmer-QPI-ImageDescription>",
        "<DescriptionVersion>2</DescriptionVersion>",
        "<AcquisitionSoftware>PerkinElmer-QPI</AcquisitionSoftware>",
        "<ImageType>%s</ImageType>" % image_type,
        "<Identifier>00000000-0000-0000-0000-000000000000</Identifier>",
        "<SlideID>test-slide</SlideID>",
        "<Barcode>test-slide</Barcode>",
        "<IsUnmixedComponent>False</IsUnmixedComponent>",
    ]
    if name:
        parts += [
            "<ExposureTime>100</ExposureTime>",
            "<SignalUnits>64</SignalUnits>",
            "<Name>%s</Name>" % name,
            "<Color>%s</Color>" % color,
            "<Biomarker>%s</Biomarker>" % name,
        ]
    parts += [
        "<ScanProfile><root>",
        "<ObjectiveName>20x</ObjectiveName>",
        "<Magnification>20</Magnification>",
        "<PixelSizeMicrons>%g</PixelSizeMicrons>" % MPP,
        "</root></ScanProfile>",
        "</PerkinElmer-QPI-ImageDescription>",
    ]
    return "\r\n".join(parts)


def channel(c, w, h):
    """Distinct content per channel: a gradient and a channel-placed block."""
    y, x = np.mgrid[0:h, 0:w]
    img = ((x * 255 // max(w - 1, 1)) // (c + 1) + (y * 64 // max(h - 1, 1))).astype(np.uint8)
    x0 = (c + 1) * w // 5
    img[h // 4:h // 2, x0:x0 + w // 8] = 240 - 40 * c
    return img


def rgb(w, h, seed):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7 + seed) % 256, (y * 5 + seed) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)


def main():
    res = (1e4 / MPP, 1e4 / MPP)  # pixels per centimetre
    common = dict(software="PerkinElmer-QPI", resolution=res, resolutionunit="CENTIMETER",
                  metadata=None, compression="zlib")
    with tifffile.TiffWriter("fluorescence.qptiff") as tw:
        for c, (name, color) in enumerate(CHANNELS):
            tw.write(channel(c, W, H), tile=(TILE, TILE), photometric="minisblack",
                     description=description("FullResolution", name, color), **common)
        tw.write(rgb(W // 8, H // 8, 1), photometric="rgb", rowsperstrip=16,
                 description=description("Thumbnail"), **common)
        for k in (2, 4):
            for c, (name, color) in enumerate(CHANNELS):
                tw.write(channel(c, W, H)[::k, ::k], tile=(TILE, TILE), photometric="minisblack",
                         subfiletype=1, description=description("ReducedResolution", name, color),
                         **common)
        tw.write(rgb(150, 60, 2), photometric="rgb", rowsperstrip=16,
                 description=description("Overview"), **common)
        tw.write(rgb(40, 30, 3), photometric="rgb", rowsperstrip=16,
                 description=description("Label"), **common)


if __name__ == "__main__":
    main()
