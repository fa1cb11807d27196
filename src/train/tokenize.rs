//! Prompts to token ids: the model's own `tokenizer.json` (CLIP BPE for real weights, a small
//! word-level vocabulary for the tiny model), CLIP's start/end tokens, truncation to the context
//! length and padding.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::{Lowercase, NFKC, Sequence};
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::TrainError;

pub const START: &str = "<|startoftext|>";
pub const END: &str = "<|endoftext|>";

/// Padding id unless the model's config names another. CLIP's attention is causal and it pools
/// at the end token, so whatever follows the end token never matters; OpenAI pads with 0.
pub const DEFAULT_PAD_ID: u32 = 0;

pub struct PromptTokenizer {
    inner: Tokenizer,
    start: Option<u32>,
    end: u32,
    pad: u32,
    max_tokens: usize,
}

impl PromptTokenizer {
    /// Reads a `tokenizer.json`; it must have CLIP's end token, where the text tower pools.
    pub fn from_json(json: &[u8], max_tokens: usize) -> Result<Self, TrainError> {
        let inner =
            Tokenizer::from_bytes(json).map_err(|source| TrainError::BadTokenizer { source })?;
        let end = inner
            .token_to_id(END)
            .ok_or(TrainError::TokenizerLacksToken { token: END })?;
        if max_tokens < 2 {
            return Err(TrainError::ContextTooShort { tokens: max_tokens });
        }
        Ok(Self {
            start: inner.token_to_id(START),
            inner,
            end,
            pad: DEFAULT_PAD_ID,
            max_tokens,
        })
    }

    /// Pads with `pad` from now on (the model's `pad_token_id`).
    pub fn with_pad(mut self, pad: u32) -> Self {
        self.pad = pad;
        self
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn start_id(&self) -> Option<u32> {
        self.start
    }

    pub fn end_id(&self) -> u32 {
        self.end
    }

    /// The largest id the tokenizer can produce (argmax pooling needs it to be the end token).
    pub fn largest_id(&self) -> u32 {
        self.inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .unwrap_or(self.end)
    }

    /// One prompt's ids: start token, words, end token, at most `max_tokens` long (the end token
    /// is kept when truncating, as CLIP's tokenizer does).
    pub fn ids(&self, prompt: &str) -> Result<Vec<u32>, TrainError> {
        let encoding = self
            .inner
            .encode(prompt, true)
            .map_err(|source| TrainError::Tokenize {
                prompt: prompt.to_owned(),
                source,
            })?;
        let mut ids: Vec<u32> = encoding.get_ids().to_vec();
        if let Some(start) = self.start
            && ids.first() != Some(&start)
        {
            ids.insert(0, start);
        }
        if ids.last() != Some(&self.end) {
            ids.push(self.end);
        }
        if ids.len() > self.max_tokens {
            ids.truncate(self.max_tokens - 1);
            ids.push(self.end);
        }
        Ok(ids)
    }

    /// A `(batch, longest)` u32 tensor, padded after each prompt's end token.
    pub fn batch(&self, prompts: &[&str], device: &Device) -> Result<Tensor, TrainError> {
        let rows = prompts
            .iter()
            .map(|p| self.ids(p))
            .collect::<Result<Vec<_>, _>>()?;
        let width = rows.iter().map(Vec::len).max().unwrap_or(2);
        let mut flat = Vec::with_capacity(rows.len() * width);
        for row in &rows {
            flat.extend_from_slice(row);
            flat.resize(flat.len() + width - row.len(), self.pad);
        }
        Ok(Tensor::from_vec(flat, (rows.len(), width), device)?)
    }
}

/// A word-level `tokenizer.json` over `words` (lowercased, NFKC): id 0 pads, 1 is unknown, the
/// start and end tokens come last. What the tiny model ships instead of CLIP's 49k BPE merges.
pub fn word_level_tokenizer_json<'a>(
    words: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<u8>, TrainError> {
    let fail = |source: tokenizers::Error| TrainError::BuildTokenizer { source };
    let mut vocab: HashMap<String, u32> = HashMap::new();
    vocab.insert("<|pad|>".into(), 0);
    vocab.insert("<|unk|>".into(), 1);
    let mut sorted: Vec<String> = words.into_iter().map(|w| w.to_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    for word in sorted {
        let next = vocab.len() as u32;
        vocab.entry(word).or_insert(next);
    }
    let start = vocab.len() as u32;
    vocab.insert(START.into(), start);
    vocab.insert(END.into(), start + 1);
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<|unk|>".into())
        .build()
        .map_err(fail)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(Sequence::new(vec![NFKC.into(), Lowercase.into()])))
        .map_err(fail)?;
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    let template = TemplateProcessing::builder()
        .try_single(format!("{START} $A {END}"))
        .map_err(|e| fail(e.into()))?
        .special_tokens(vec![(START, start), (END, start + 1)])
        .build()
        .map_err(|e| fail(e.into()))?;
    tokenizer.with_post_processor(Some(template));
    tokenizer
        .add_special_tokens([AddedToken::from(START, true), AddedToken::from(END, true)])
        .map_err(fail)?;
    Ok(tokenizer.to_string(true).map_err(fail)?.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> PromptTokenizer {
        let json = word_level_tokenizer_json(["a", "cat", "Red", "in", "space"]).unwrap();
        PromptTokenizer::from_json(&json, 6).unwrap()
    }

    #[test]
    fn wraps_prompts_in_start_and_end_and_maps_unknown_words() {
        let t = tiny();
        assert_eq!(t.vocab_size(), 9);
        let ids = t.ids("A red  CAT, in space").unwrap();
        // start, a, red, cat, ",", in -> truncated to 6 with the end token kept last.
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], 7);
        assert_eq!(*ids.last().unwrap(), 8);
        assert_eq!(&ids[1..4], &[2, 5, 3]);
        assert_eq!(ids[4], 1, "the comma is unknown");
        assert_eq!(t.ids("").unwrap(), vec![7, 8]);
    }

    #[test]
    fn batches_are_zero_padded_to_the_longest_prompt() {
        let t = tiny();
        let batch = t.batch(&["cat", "a red cat"], &Device::Cpu).unwrap();
        assert_eq!(batch.dims(), &[2, 5]);
        let rows = batch.to_vec2::<u32>().unwrap();
        assert_eq!(rows[0], vec![7, 3, 8, 0, 0]);
        assert_eq!(rows[1], vec![7, 2, 5, 3, 8]);
    }

    #[test]
    fn accepts_an_end_token_that_is_not_the_largest_id_and_pads_as_told() {
        let json = word_level_tokenizer_json(["cat"]).unwrap();
        let text = String::from_utf8(json)
            .unwrap()
            .replace("\"cat\": 2", "\"cat\": 99");
        let t = PromptTokenizer::from_json(text.as_bytes(), 8)
            .unwrap()
            .with_pad(5);
        assert_eq!((t.start_id(), t.end_id(), t.largest_id()), (Some(3), 4, 99));
        let rows = t
            .batch(&["", "cat"], &Device::Cpu)
            .unwrap()
            .to_vec2::<u32>()
            .unwrap();
        assert_eq!(rows, vec![vec![3, 4, 5], vec![3, 99, 4]]);
        let no_end = text.replace(END, "<|eot|>");
        assert!(matches!(
            PromptTokenizer::from_json(no_end.as_bytes(), 8),
            Err(TrainError::TokenizerLacksToken { token: END })
        ));
        assert!(matches!(
            PromptTokenizer::from_json(b"not json", 8),
            Err(TrainError::BadTokenizer { .. })
        ));
        assert!(matches!(
            PromptTokenizer::from_json(text.as_bytes(), 1),
            Err(TrainError::ContextTooShort { tokens: 1 })
        ));
    }
}
