//! How an image file becomes a network input: the recipe a checkpoint records beside its
//! weights, so that a trained model reads images exactly as its training did.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The region of a decoded image that is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crop {
    /// The largest centred square (the whole image when it is square).
    CentreSquare,
    /// The largest centred region with the input's aspect ratio (an aligned 112 x 96 face
    /// kept whole for a 112 x 96 input).
    CentreAspect,
}

/// The filter that resizes the kept region to the input's height and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeFilter {
    /// Bilinear (the `image` crate's `Triangle`).
    Triangle,
}

/// How an 8-bit channel value v becomes an input value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scaling {
    /// v / 127.5 − 1: [0, 255] onto [−1, 1].
    SymmetricUnit,
}

/// Decode, crop, resize, convert to grey (one channel, luma) or RGB (three planes), scale;
/// NCHW with the network's input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Channels (1: grey, 3: RGB), height, width of the network input.
    pub input: [usize; 3],
    /// The region kept.
    pub crop: Crop,
    /// The resize filter.
    pub resize: ResizeFilter,
    /// The value scaling.
    pub scaling: Scaling,
}

impl Preprocessing {
    /// What the face job and [`super::folder`] do: centre square, bilinear resize to
    /// `input`, [−1, 1]. One or three channels.
    pub fn centre_square(input: [usize; 3]) -> Result<Self> {
        if !matches!(input[0], 1 | 3) || input[1] == 0 || input[2] == 0 {
            return Err(Error::Config(format!(
                "an image input has 1 (grey) or 3 (RGB) channels and a non-empty size, not {input:?}"
            )));
        }
        Ok(Self { input, crop: Crop::CentreSquare, resize: ResizeFilter::Triangle, scaling: Scaling::SymmetricUnit })
    }

    /// What the face job does for any input: [`Preprocessing::centre_square`] for a square
    /// input, the same with a [`Crop::CentreAspect`] crop for another.
    pub fn centre(input: [usize; 3]) -> Result<Self> {
        let square = Self::centre_square(input)?;
        Ok(if input[1] == input[2] { square } else { Self { crop: Crop::CentreAspect, ..square } })
    }

    /// Values per image.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// One line for people: `3x64x64 RGB, centre square, bilinear, [-1, 1]`.
    pub fn describe(&self) -> String {
        let [c, h, w] = self.input;
        let colour = if c == 1 { "grey" } else { "RGB" };
        let crop = match self.crop {
            Crop::CentreSquare => "centre square crop",
            Crop::CentreAspect => "centre crop to the input's aspect",
        };
        format!("{c}x{h}x{w} {colour} NCHW, {crop}, bilinear resize, v/127.5 - 1 (values in [-1, 1])")
    }

    /// The JSON a checkpoint stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plain struct serialises")
    }

    /// Reads [`Preprocessing::to_json`]'s text.
    pub fn from_json(text: &str) -> Result<Self> {
        let p: Self = serde_json::from_str(text).map_err(|e| Error::Data(format!("unreadable preprocessing: {e}")))?;
        Self::centre_square(p.input)?;
        Ok(p)
    }

    /// Decodes the image file at `path` (a regular file of at most [`MAX_IMAGE_BYTES`])
    /// into `input_len` values.
    #[cfg(feature = "images")]
    pub fn load(&self, path: &std::path::Path) -> std::result::Result<Vec<f32>, String> {
        let bytes = crate::files::read(path, MAX_IMAGE_BYTES, "image file").map_err(|e| crate::files::reason(&e))?;
        self.decode(&bytes)
    }

    /// Decodes an encoded image held in memory (PNG, JPEG, PNM; a record of a pack, an
    /// image of a benchmark) into `input_len` values. A truncated file is refused
    /// ([`check_whole`]), not decoded with its missing part filled in.
    #[cfg(feature = "images")]
    pub fn decode(&self, bytes: &[u8]) -> std::result::Result<Vec<f32>, String> {
        check_whole(bytes)?;
        let image = image::load_from_memory(bytes).map_err(|e| format!("does not decode as an image: {e}"))?;
        Ok(self.apply(image))
    }

    /// Crops, resizes, converts and scales a decoded image.
    #[cfg(feature = "images")]
    pub fn apply(&self, img: image::DynamicImage) -> Vec<f32> {
        let [c, oh, ow] = self.input;
        let (w, h) = (img.width() as u64, img.height() as u64);
        // The kept region: cw x ch, centred, with the aspect ratio of the crop's target.
        let (aw, ah) = match self.crop {
            Crop::CentreSquare => (1, 1),
            Crop::CentreAspect => (ow as u64, oh as u64),
        };
        let (cw, ch) = if w * ah <= h * aw { (w, (w * ah / aw).max(1)) } else { ((h * aw / ah).max(1), h) };
        let img = img.crop_imm(((w - cw) / 2) as u32, ((h - ch) / 2) as u32, cw as u32, ch as u32);
        let ResizeFilter::Triangle = self.resize;
        let img = img.resize_exact(ow as u32, oh as u32, image::imageops::FilterType::Triangle);
        let Scaling::SymmetricUnit = self.scaling;
        let scale = |v: u8| v as f32 / 127.5 - 1.0;
        if c == 1 {
            img.to_luma8().pixels().map(|p| scale(p.0[0])).collect()
        } else {
            let rgb = img.to_rgb8();
            (0..3).flat_map(|ch| rgb.pixels().map(move |p| scale(p.0[ch])).collect::<Vec<_>>()).collect()
        }
    }
}

/// The largest image file read: 256 MiB.
#[cfg(feature = "images")]
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Refuses a JPEG that ends before its end-of-image marker: the decoder fills the part of a
/// truncated JPEG that is missing and reports nothing. The marker segments are walked from
/// the start to the first scan (so that a thumbnail's own marker inside them does not
/// count); the marker must follow it (anywhere after the start in a file whose segments do
/// not chain, which decoders read all the same). Other formats' decoders report a
/// truncation themselves.
#[cfg(feature = "images")]
pub fn check_whole(bytes: &[u8]) -> std::result::Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let truncated = || Err("a truncated JPEG: it ends before its end-of-image marker".to_string());
    let mut at = 2;
    let scan = loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        match (bytes.get(at), bytes.get(at + 1)) {
            (Some(0xFF), Some(0xDA)) => break at,
            (Some(0xFF), Some(0xD9)) => return Ok(()),
            // Markers without a length: TEM and the restart markers.
            (Some(0xFF), Some(0x01 | 0xD0..=0xD7)) => at += 2,
            (Some(0xFF), Some(_)) => match bytes.get(at + 2..at + 4) {
                Some(len) => at += 2 + u16::from_be_bytes([len[0], len[1]]) as usize,
                None => return truncated(),
            },
            (Some(_), _) => break 2,
            (None, _) => return truncated(),
        }
    };
    if bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        truncated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_and_refuses_other_channel_counts() {
        let p = Preprocessing::centre_square([3, 112, 96]).unwrap();
        assert_eq!(Preprocessing::from_json(&p.to_json()).unwrap(), p);
        let p = Preprocessing::centre([3, 112, 96]).unwrap();
        assert_eq!((p.crop, Preprocessing::from_json(&p.to_json()).unwrap()), (Crop::CentreAspect, p));
        assert_eq!(Preprocessing::centre([1, 64, 64]).unwrap().crop, Crop::CentreSquare);
        assert!(Preprocessing::centre_square([2, 64, 64]).is_err());
        assert!(Preprocessing::from_json("{\"input\":[1,64,64]}").is_err());
    }
}

#[cfg(all(test, feature = "images"))]
mod crop_tests {
    use super::*;

    /// A 12 x 8 (w x h) grey image whose value is its column: what each crop keeps shows.
    fn columns() -> image::DynamicImage {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(12, 8, |x, _| image::Luma([x as u8 * 20])))
    }

    #[test]
    fn an_aspect_crop_keeps_the_centred_region_of_the_inputs_shape() {
        // 8 x 4 (h x w) input from a 12 x 8 image: the centred 4 x 8 (w x h) region, columns 4..8.
        let p = Preprocessing::centre([1, 8, 4]).unwrap();
        let out = p.apply(columns());
        let first_row: Vec<u8> = out[..4].iter().map(|v| ((v + 1.0) * 127.5).round() as u8).collect();
        assert_eq!(first_row, [80, 100, 120, 140]);
        // The square crop of the same image keeps columns 2..10.
        let square = Preprocessing::centre_square([1, 8, 8]).unwrap().apply(columns());
        assert_eq!(((square[0] + 1.0) * 127.5).round() as u8, 40);
    }
}
