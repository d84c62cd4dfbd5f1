"""Adversarial training for the ``gan`` architecture (Keras ``train_step`` on TensorFlow)."""

from __future__ import annotations

from typing import Any


def make_gan(generator: Any, discriminator: Any, latent: int, seed: int):
    """A Keras model whose ``fit`` alternates discriminator and generator updates."""
    import keras
    import tensorflow as tf

    class GAN(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.generator = generator
            self.discriminator = discriminator
            self.latent = latent
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

        def compile(self, d_optimizer, g_optimizer) -> None:  # noqa: D401
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def call(self, z, training=False):
            return self.generator(z, training=training)

        def train_step(self, real):
            if isinstance(real, tuple):
                real = real[0]
            batch = tf.shape(real)[0]
            z = keras.random.normal((batch, self.latent), seed=self.seed_generator)
            fake = self.generator(z)
            images = tf.concat([fake, real], axis=0)
            labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
            labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                d_loss = self.loss_fn(labels, self.discriminator(images, training=True))
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
            z = keras.random.normal((batch, self.latent), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                verdict = self.discriminator(self.generator(z, training=True))
                g_loss = self.loss_fn(tf.zeros((batch, 1)), verdict)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    return GAN()
