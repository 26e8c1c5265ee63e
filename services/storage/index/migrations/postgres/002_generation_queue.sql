-- The places (running or waiting) each instance holds per backend, so that the
-- waiting line is counted across instances. A row counts only while its
-- instance holds its advisory lock (queueInstance, instance): the rows of an
-- instance that died are ignored, and removed by the next one to look.
CREATE TABLE queue_places (
  instance integer NOT NULL,
  backend text NOT NULL,
  places integer NOT NULL,
  PRIMARY KEY (instance, backend)
);
