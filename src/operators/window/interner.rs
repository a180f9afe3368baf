//! Interned keys with reference counts: window state refers to a key by a
//! `u32`, and a key whose last pane or session is purged frees its memory.

use hashbrown::HashMap;

/// Interned keys with reference counts, so purged keys free their memory.
#[derive(Debug, Default)]
pub(crate) struct KeyInterner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl KeyInterner {
    #[inline]
    pub(crate) fn id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = key.into();
                id
            }
            None => {
                self.names.push(key.into());
                self.refs.push(0);
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(key.into(), id);
        id
    }

    #[inline]
    pub(crate) fn retain(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    /// Drops one reference; true when that was the last and the key is gone.
    pub(crate) fn release(&mut self, id: u32) -> bool {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
            return true;
        }
        false
    }

    /// How many references `id` has.
    pub(crate) fn refs(&self, id: u32) -> u32 {
        self.refs[id as usize]
    }

    /// The id of `key`, if it is interned.
    pub(crate) fn get(&self, key: &str) -> Option<u32> {
        self.ids.get(key).copied()
    }

    #[inline]
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}
